"""Adapters for daphne's WebSocket protocol (autobahn on Twisted); uvicorn needs neither.

**Close codes.** daphne closes a socket through autobahn's `sendClose`, which accepts only
1000 and 3000-4999 and raises for every other code, so `close(code=1008)` never reaches
the client (it sees 1006). RFC 6455 section 7.4.1 defines 1000-1003 and 1007-1011 for
endpoints, and IANA registered 1012-1014. For those, `server_close` writes the close frame
directly with autobahn's `sendCloseFrame`, the same call daphne itself uses for its 1011 on
an application error. Any other code keeps daphne's behaviour.

**Writes.** Twisted's `write` never writes: it buffers the bytes, registers the socket for
writability with the event loop, and a later loop pass sends them and unregisters it. For
one event to 1,000 idle sockets that is 2,000 more system calls and as many loop
callbacks, and every socket waits for the whole fan-out pass before its bytes leave.
`send_data` sends at once when nothing is waiting in the transport's buffer, as asyncio's
transports (and so uvicorn) do, and hands whatever the socket did not take to Twisted's
`write`, which keeps the order. The HTTP channel stays registered as the transport's
streaming producer: it is paused only when the buffer fills, which `write` still decides.
Anything unusual (TLS, a pull producer or a paused one, autobahn's own send queue, a
half-closed or lost connection) takes autobahn's path unchanged.

**Options.** When a connection opens, autobahn copies its factory's 29 protocol options
(timeouts, sizes, origins...) into the protocol instance, unless the protocol already has
them. Every socket then carries a dictionary of 108 attributes: about 3.4 KB, and half
that without the copies (measured: 2.3 MB less per 1,000 idle sockets). `FactoryOption`
gives the protocol class each option as a read of its factory's, so nothing is copied;
an option set on one protocol instance still applies to that instance alone. daphne sets
its options on the factory once, at start-up.
"""

import logging

logger = logging.getLogger(__name__)

# Codes an endpoint may send (1004-1006 and 1015 are reserved, never sent on the wire).
SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)}) | frozenset(
    range(3000, 5000)
)


def server_close(protocol, code=None):
    """daphne's `WebSocketProtocol.serverClose`, with every sendable code allowed."""
    code = 1000 if code is None else code
    if code in SENDABLE_CLOSE_CODES:
        protocol.sendCloseFrame(code=code, isReply=False)
    else:
        protocol.sendClose(code=code)


def write_through(transport, data):
    """Send `data` on a Twisted TCP transport now if nothing is buffered before it.

    Returns False, having sent nothing, when the transport must buffer it instead.
    """
    if (
        transport.dataBuffer
        or getattr(transport, "_tempDataLen", 1)  # Twisted's list buffer; unknown: buffer
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


def install():
    """Patch daphne's protocol class once; harmless when daphne is not installed."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # served by another server
        return
    if getattr(WebSocketProtocol.serverClose, "threatlens_adapter", False):
        return
    if not hasattr(WebSocketProtocol, "sendCloseFrame"):
        logger.warning("daphne/autobahn without sendCloseFrame: close codes stay restricted")
    else:
        server_close.threatlens_adapter = True
        WebSocketProtocol.serverClose = server_close
    _install_writes(WebSocketProtocol)
    _share_options(WebSocketProtocol)


class FactoryOption:
    """A protocol option that reads the factory's value (a non-data descriptor: a value
    assigned to the instance takes precedence)."""

    def __init__(self, name):
        self.name = name

    def __get__(self, protocol, owner=None):
        if protocol is None:
            return self
        return getattr(protocol.factory, self.name)


def _share_options(protocol_class):
    for name in getattr(protocol_class, "CONFIG_ATTRS", ()):
        if not hasattr(protocol_class, name):
            setattr(protocol_class, name, FactoryOption(name))


def _install_writes(protocol_class):
    from twisted.internet.tcp import Connection

    if not all(hasattr(Connection, name) for name in _TRANSPORT_STATE):
        logger.warning("Twisted's TCP transport changed: daphne's writes stay buffered")
        return
    autobahn_send_data = protocol_class.sendData

    def send_data(protocol, data, sync=False, chopsize=None):
        transport = protocol.transport
        if (
            sync
            or chopsize
            or protocol.send_queue
            or not isinstance(transport, Connection)
            or not write_through(transport, data)
        ):
            autobahn_send_data(protocol, data, sync, chopsize)

    protocol_class.sendData = send_data


# What `write_through` reads of Twisted's transport (class attributes of FileDescriptor).
_TRANSPORT_STATE = (
    "dataBuffer",
    "producer",
    "streamingProducer",
    "producerPaused",
    "disconnecting",
    "_writeDisconnected",
    "connected",
    "writeSomeData",
)
