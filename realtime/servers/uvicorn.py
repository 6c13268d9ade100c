"""uvicorn's websockets-sansio protocol (`WebSocketsSansIOProtocol`): its internals read here.

**Writes** (`uvicorn_writes`). uvicorn's `send` for a "websocket.send" awaits an
`asyncio.Event`, encodes the text, makes a websockets `Frame`, serializes and joins it: for
an event fanned out to thousands of sockets, the same bytes every time (server frames are
not masked). The hub writes the frame, built once, to the transport itself, under exactly
the conditions in which uvicorn's `send` would write at once: handshake done, no close sent
or received, the transport not over its high-water mark, no compression negotiated.

**Handshake** (`uvicorn_handshake`). The protocol keeps the handshake request and its
response (with their headers) for the life of the socket, though it reads them only until
the handshake is answered; the scope holds what the application needs. websockets' parser
keeps the request too (a local of its generator): its headers are emptied.

**Socket lines** (`uvicorn_socket_log`). uvicorn logs every accepted socket at info
(`"WebSocket /ws?…" [accepted]`), and websockets its `connection open`, through the
protocol's logger, uvicorn's `uvicorn.error`. `threatlens.serverlog` drops them, but only
once made: a record each, masked (`threatlens.logredaction`), ~7% of a connect. Before
accepting, the protocol and its websockets connection get a child logger,
`uvicorn.error.sockets`, that makes info records only when `uvicorn.error` logs at debug
(at install); its warnings and errors go to uvicorn's handlers as before.

**Transport** (`uvicorn_transport`). The bytes the transport holds for a socket, and
dropping the TCP connection of a client that stopped reading (a close frame would wait
behind its full buffer for ever).
"""

import functools
import logging

from realtime.servers import GuardedAccess

SERVER_LOGGER = "uvicorn.error"
# Looked up once: every socket is given it (getLogger takes logging's lock each time).
SOCKET_LOGGER = logging.getLogger("uvicorn.error.sockets")


class UvicornAccess(GuardedAccess):
    __slots__ = ("protocol",)
    paths = {
        "write_frame": "uvicorn_writes",
        "release_handshake": "uvicorn_handshake",
        "abort": "uvicorn_transport",
        "buffered": "uvicorn_transport",
    }

    def __init__(self, protocol):
        super().__init__()
        self.protocol = protocol
        if protocol.conn.extensions:  # compression, for the life of the socket
            self.broken = self.broken | {"write_frame"}

    def _write_frame(self, data):
        protocol = self.protocol
        if (
            protocol.writable.is_set()
            and protocol.handshake_complete
            and not protocol.disconnected
            and not protocol.close_sent
            and protocol.initial_response is None
            and protocol.conn.state is _open_state()
        ):
            protocol.transport.write(data)
            return True
        return False

    def _release_handshake(self):
        protocol = self.protocol
        if protocol.handshake_complete:
            if protocol.request is not None:
                # websockets' parser keeps the request, a local of its generator, for the
                # socket's life: its headers (a dozen objects) go, the empty shell stays.
                protocol.request.headers.clear()
            protocol.request = None
            protocol.response = None

    def _abort(self):
        self.protocol.transport.abort()
        return True

    def _buffered(self):
        return self.protocol.transport.get_write_buffer_size()


def access_for(send):
    """A `UvicornAccess` when `send` is a bound `send` of uvicorn's sansio protocol."""
    protocol = _protocol_of(send)
    return None if protocol is None else UvicornAccess(protocol)


def quiet_socket_lines(send):
    """The socket's lines per socket through `SOCKET_LOGGER` (before it is accepted)."""
    protocol = _protocol_of(send)
    if protocol is not None:
        protocol.logger = protocol.conn.logger = SOCKET_LOGGER


def install():
    """`SOCKET_LOGGER` makes info records only when uvicorn's logger is at debug, as
    uvicorn's command line set it before loading the application."""
    debug = logging.getLogger(SERVER_LOGGER).getEffectiveLevel() <= logging.DEBUG
    SOCKET_LOGGER.setLevel(logging.NOTSET if debug else logging.WARNING)


def _protocol_of(send):
    protocol_class = _protocol_class()
    protocol = getattr(send, "__self__", None)
    if protocol_class is None or type(protocol) is not protocol_class:
        return None
    return protocol


@functools.cache
def _protocol_class():
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:  # another server, or a uvicorn without the sansio protocol
        return None
    return WebSocketsSansIOProtocol


@functools.cache
def _open_state():
    from websockets.protocol import State

    return State.OPEN
