"""Let daphne send the close codes the protocols document (1003, 1008, 1011, 1012, 1013).

daphne closes a socket through autobahn's `sendClose`, which accepts only 1000 and
3000-4999 and raises for every other code, so `close(code=1008)` never reaches the client
(it sees 1006). RFC 6455 section 7.4.1 defines 1000-1003 and 1007-1011 for endpoints, and
IANA registered 1012-1014. For those, this adapter writes the close frame directly with
autobahn's `sendCloseFrame`, the same call daphne itself uses for its 1011 on an
application error. Any other code keeps daphne's behaviour. uvicorn needs no adapter.
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
        return
    server_close.threatlens_adapter = True
    WebSocketProtocol.serverClose = server_close
