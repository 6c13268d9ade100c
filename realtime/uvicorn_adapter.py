"""What uvicorn's WebSocket protocol keeps of a socket's opening handshake.

uvicorn's websockets-sansio protocol keeps the handshake request and its response (both
with their headers) for the life of the socket, though it reads them only until the
handshake is answered; the scope it gave the application holds the headers the
application needs. `release_handshake` drops them once the socket is accepted: 1.9 KB less
per idle socket under tracemalloc (bench/RESULTS.md). With any other server, or a uvicorn
whose protocol does not look as expected, it does nothing.
"""

from realtime.direct_writes import uvicorn_protocol_class


def release_handshake(send):
    """Let uvicorn forget an accepted socket's handshake request and response."""
    protocol_class = uvicorn_protocol_class()
    protocol = getattr(send, "__self__", None)
    if (
        protocol_class is not None
        and type(protocol) is protocol_class
        and protocol.handshake_complete
        and getattr(protocol, "response", None) is not None
        and getattr(protocol, "request", None) is not None
    ):
        protocol.request = None
        protocol.response = None
