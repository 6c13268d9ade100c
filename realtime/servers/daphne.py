"""daphne's WebSocket protocol (autobahn on Twisted): its internals read and patched here.

**Close codes** (`daphne_close_codes`). daphne closes a socket through autobahn's
`sendClose`, which accepts only 1000 and 3000-4999 and raises for every other code, so
`close(code=1008)` never reaches the client (it sees 1006). RFC 6455 section 7.4.1 defines
1000-1003 and 1007-1011 for endpoints, and IANA registered 1012-1014. For those,
`server_close` writes the close frame with autobahn's `sendCloseFrame`, the call daphne
itself uses for its 1011 on an application error. Any other code keeps daphne's behaviour.
Without this path (or if it fails), the consumer closes with the code's private-use stand-in
(`realtime.servers.close_socket`: 4013 for 1013), which autobahn accepts.

**Write-through** (`daphne_write_through`). Twisted's `write` never writes: it buffers the
bytes, registers the socket for writability, and a later reactor pass sends them. For one
event to 1,000 idle sockets that is 2,000 more system calls and as many loop callbacks.
`write_through` sends at once when nothing waits in the transport's buffer, as asyncio's
transports do, and hands whatever the socket did not take to `write`, which keeps the
order. Anything unusual (TLS, a pull or paused producer, autobahn's own send queue, a
half-closed or lost connection) takes autobahn's path unchanged.

**Options** (`daphne_options`). When a connection opens, autobahn copies its factory's 29
protocol options into the protocol instance unless the class already has them: about
1.7 KB a socket. `FactoryOption` makes each a read of the factory's value instead; an
option set on one protocol instance still applies to that instance alone.

**Writes** (`daphne_writes`). The hub's event frames, built once, go to autobahn's
`sendData` for an open socket with no compression and no fragmented message in progress:
what daphne's `handle_reply` -> `serverSend` -> `sendMessage` would do, less the framing.

**Transport** (`daphne_transport`). Bytes held for a socket (daphne never makes a send
wait, so this is how the hub notices a stalled client) and dropping its TCP connection.
Without it, daphne's own keepalive drops such a client: no pong within `--ping-timeout`
(docs/servers.md).
"""

import functools
import logging

from realtime.servers import GuardedAccess, close_code_stand_in, enabled, failed

logger = logging.getLogger(__name__)

# Codes an endpoint may send (1004-1006 and 1015 are reserved, never sent on the wire).
SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)}) | frozenset(
    range(3000, 5000)
)


class DaphneAccess(GuardedAccess):
    __slots__ = ("protocol",)
    paths = {
        "write_frame": "daphne_writes",
        "abort": "daphne_transport",
        "buffered": "daphne_transport",
    }

    def __init__(self, protocol):
        super().__init__()
        self.protocol = protocol
        try:
            compressed = protocol._perMessageCompress is not None  # for the life of the socket
        except Exception as exc:  # an autobahn that renamed it: no frame writes here
            self._broke("write_frame", exc)
        else:
            if compressed:
                self.broken = self.broken | {"write_frame"}

    def _write_frame(self, data):
        protocol = self.protocol
        if (
            protocol.state == protocol.STATE_OPEN
            and protocol.send_state == protocol.SEND_STATE_GROUND
            and protocol._perMessageCompress is None
        ):
            protocol.sendData(data)
            return True
        return False

    def release_handshake(self):
        pass  # daphne keeps nothing of it worth dropping

    def _abort(self):
        self.protocol.transport.abortConnection()
        return True

    def _buffered(self):
        transport = self.protocol.transport
        return len(transport.dataBuffer) + transport._tempDataLen


def access_for(send):
    """A `DaphneAccess` when `send` is daphne's `functools.partial(handle_reply, protocol)`."""
    if not (isinstance(send, functools.partial) and send.args):
        return None
    server_class, protocol_class = _classes()
    if (
        server_class is None
        or getattr(send.func, "__func__", None) is not server_class.handle_reply
    ):
        return None
    protocol = send.args[0]
    if type(protocol) is not protocol_class:
        return None
    return DaphneAccess(protocol)


@functools.cache
def _classes():
    try:
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # served by another server
        return None, None
    return Server, WebSocketProtocol


# --- class patches, made once at start-up -----------------------------------------------------


def install():
    """Patch daphne's protocol class for the daphne fast paths that are on (each once);
    harmless when daphne is not installed or they are all off."""
    _, protocol_class = _classes()
    if protocol_class is None:
        return
    patches = {
        "daphne_close_codes": _patch_close,
        "daphne_write_through": _patch_writes,
        "daphne_options": _share_options,
    }
    for path, patch in patches.items():
        if path not in _installed and enabled(path):
            patch(protocol_class)
            _installed.add(path)


_installed = set()


def _share_options(protocol_class):
    for name in protocol_class.CONFIG_ATTRS:
        if not hasattr(protocol_class, name):
            setattr(protocol_class, name, FactoryOption(name))


def _patch_close(protocol_class):
    daphne_server_close = protocol_class.serverClose

    def server_close(protocol, code=None):
        """daphne's `WebSocketProtocol.serverClose`, with every sendable code allowed;
        if that fails, daphne's with the code's stand-in (4013 for 1013), which autobahn
        accepts: the socket closes either way."""
        code = 1000 if code is None else code
        if code in SENDABLE_CLOSE_CODES:
            try:
                protocol.sendCloseFrame(code=code, isReply=False)
                return
            except Exception as exc:
                failed("daphne_close_codes", exc)
                code = close_code_stand_in(code) or code
        daphne_server_close(protocol, code)

    protocol_class.serverClose = server_close


def _patch_writes(protocol_class):
    from twisted.internet.tcp import Connection

    autobahn_send_data = protocol_class.sendData

    def send_data(protocol, data, sync=False, chopsize=None):
        transport = protocol.transport
        if not (sync or chopsize or protocol.send_queue) and isinstance(transport, Connection):
            try:
                if write_through(transport, data):
                    return
            except Exception as exc:
                failed("daphne_write_through", exc)
        autobahn_send_data(protocol, data, sync, chopsize)

    protocol_class.sendData = send_data


def write_through(transport, data):
    """Send `data` on a Twisted TCP transport now if nothing is buffered before it.

    Returns False, having sent nothing, when the transport must buffer it instead.
    """
    if (
        transport.dataBuffer
        or transport._tempDataLen
        or (transport.producer is not None and not transport.streamingProducer)
        or transport.producerPaused
        or transport.disconnecting
        or transport._writeDisconnected
        or not transport.connected
        or getattr(transport, "TLS", False)
    ):
        return False
    sent = transport.writeSomeData(data)
    if isinstance(sent, Exception):  # lost: Twisted's write path notices it and closes
        return False
    if sent < len(data):
        transport.write(data[sent:])
    return True


class FactoryOption:
    """A protocol option that reads the factory's value (a non-data descriptor: a value
    assigned to the instance takes precedence)."""

    def __init__(self, name):
        self.name = name

    def __get__(self, protocol, owner=None):
        if protocol is None:
            return self
        return getattr(protocol.factory, self.name)
