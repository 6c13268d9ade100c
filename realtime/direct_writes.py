"""Event frames written straight to the socket, built once for every socket that gets them.

An event fanned out to thousands of sockets is the same WebSocket frame for each of them:
server frames are not masked, so without a compression extension the bytes are identical.
The ASGI `send` builds them again for every socket. Under uvicorn's websockets-sansio
protocol that is an `asyncio.Event` awaited, the text encoded, a websockets `Frame` made,
serialized and joined; under daphne, autobahn's framing and two more layers of checks.
Measured with 1,000 sockets, that was a third of the fan-out's CPU time, the rest being
mostly the system call itself.

So for those two protocols the hub writes the frame (`frame_bytes`, cached for the text
it was last asked for: the fan-out asks for one text socket after socket) to the socket's
transport itself, under exactly the conditions in which the server's own `send` would
write it at once: the socket is open, nothing is being sent in pieces, no compression
was negotiated, and the transport is not holding writes back. Otherwise, for any other
server, and for everything that is not an event frame (replies, errors, closes), the
ASGI `send` does it.
"""

import functools
import struct

TEXT_FRAME = 0x81  # FIN and opcode 1 (text), RFC 6455 section 5.2


def frame_bytes(text):
    """The unmasked, final WebSocket text frame carrying `text` (a server's frame)."""
    global _last
    if _last[0] is text:
        return _last[1]
    payload = text.encode()
    length = len(payload)
    if length < 126:
        header = bytes((TEXT_FRAME, length))
    elif length < 65536:
        header = struct.pack("!BBH", TEXT_FRAME, 126, length)
    else:
        header = struct.pack("!BBQ", TEXT_FRAME, 127, length)
    data = header + payload
    _last = (text, data)
    return data


_last = (None, b"")


def target_for(send):
    """(writer, protocol) for the ASGI `send` of a socket, when its server's protocol is
    one this module knows; else None. `writer(protocol, data)` writes the frame `data`
    and returns True, or returns False having written nothing.

    Asked once the socket is accepted: a socket that negotiated compression keeps it for
    its life, so it gets None here rather than a writer that declines every frame."""
    uvicorn_protocol = uvicorn_protocol_class()
    protocol = getattr(send, "__self__", None)
    if uvicorn_protocol is not None and type(protocol) is uvicorn_protocol:
        if getattr(getattr(protocol, "conn", None), "extensions", None):
            return None
        return (_write_uvicorn, protocol)
    if isinstance(send, functools.partial) and send.args and _is_daphne_reply(send.func):
        protocol = send.args[0]
        if type(protocol) is _daphne_protocol_class():
            if getattr(protocol, "_perMessageCompress", None) is not None:
                return None
            return (_write_daphne, protocol)
    return None


def abort(send):
    """Drop the TCP connection under a socket's ASGI `send` at once, without a closing
    handshake: for a client that stopped reading, whose full buffer would hold a close
    frame back for ever. Returns False (having done nothing) for an unknown server."""
    protocol = getattr(send, "__self__", None)
    uvicorn_protocol = uvicorn_protocol_class()
    if uvicorn_protocol is not None and type(protocol) is uvicorn_protocol:
        transport = getattr(protocol, "transport", None)
        if transport is not None:
            transport.abort()
            return True
    if isinstance(send, functools.partial) and send.args and _is_daphne_reply(send.func):
        transport = getattr(send.args[0], "transport", None)
        if transport is not None and hasattr(transport, "abortConnection"):
            transport.abortConnection()
            return True
    return False


def buffered(send):
    """Bytes the server holds for a socket, not yet taken by the kernel (None: unknown)."""
    protocol = getattr(send, "__self__", None)
    uvicorn_protocol = uvicorn_protocol_class()
    if uvicorn_protocol is not None and type(protocol) is uvicorn_protocol:
        transport = getattr(protocol, "transport", None)
        return transport.get_write_buffer_size() if transport is not None else None
    if isinstance(send, functools.partial) and send.args and _is_daphne_reply(send.func):
        transport = getattr(send.args[0], "transport", None)
        if transport is None:
            return None
        pending = getattr(transport, "dataBuffer", b"")
        return len(pending) + getattr(transport, "_tempDataLen", 0)
    return None


def _write_uvicorn(protocol, data):
    # uvicorn's WebSocketsSansIOProtocol.send for a "websocket.send", less the framing:
    # it waits for `writable` (cleared while the transport's buffer is over its high-water
    # mark), then writes when the handshake is done and no close was sent or received.
    conn = protocol.conn
    if (
        protocol.writable.is_set()
        and protocol.handshake_complete
        and not protocol.disconnected
        and not protocol.close_sent
        and protocol.initial_response is None
        and conn.state is _open_state()
        and not conn.extensions
    ):
        protocol.transport.write(data)
        return True
    return False


def _write_daphne(protocol, data):
    # daphne's handle_reply -> serverSend -> autobahn's sendMessage for an open socket
    # with no compression and no message being sent in fragments; sendData then writes
    # (through realtime.daphne_adapter's write-through when nothing is buffered).
    if (
        protocol.state == protocol.STATE_OPEN
        and protocol.send_state == protocol.SEND_STATE_GROUND
        and protocol._perMessageCompress is None
    ):
        protocol.sendData(data)
        return True
    return False


@functools.cache
def uvicorn_protocol_class():
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:
        return None
    names = ("writable", "handshake_complete", "disconnected", "close_sent", "initial_response")
    probe = WebSocketsSansIOProtocol.__init__.__code__.co_names
    return WebSocketsSansIOProtocol if all(name in probe for name in names) else None


@functools.cache
def _open_state():
    from websockets.protocol import State

    return State.OPEN


@functools.cache
def _daphne_protocol_class():
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return None
    return WebSocketProtocol


def _is_daphne_reply(function):
    try:
        from daphne.server import Server
    except ImportError:
        return False
    return getattr(function, "__func__", None) is Server.handle_reply
