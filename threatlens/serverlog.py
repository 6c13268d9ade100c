"""The server's log without a line per WebSocket.

At its default level (info) uvicorn logs every accepted socket (`"WebSocket /ws?…"
[accepted]`), and the websockets library, through uvicorn's logger, its `connection
open`, even with `--no-access-log`. ThreatLens writes an audit row for every socket
(connect and disconnect, with the user, address and user agent: `/api/audit/`), so these
lines only repeat it; after a deploy thousands of sockets reconnect within seconds, and
writing two lines for each took a fifth of a connect's CPU (bench/RESULTS.md).

`SocketLines` leaves them out while uvicorn logs at info or above; with `--log-level
debug` (or `trace`) they are written, masked as every line is (`threatlens.logredaction`).
"""

import logging
import re

SERVER_LOGGER = "uvicorn.error"

# The lines, as written (the token in a query string already masked by then):
# `127.0.0.1:5000 - "WebSocket /ws?token=…" [accepted]` (or an HTTP status when refused),
# `connection open`, `connection closed`.
SOCKET_LINE = re.compile(
    r'\S* - "WebSocket [^"]*" (?:\[accepted\]|\d{3})|connection (?:open|closed)'
)


class SocketLines(logging.Filter):
    """On uvicorn's logger: drops its lines per socket unless it logs at debug."""

    def filter(self, record):
        if record.levelno != logging.INFO or not SOCKET_LINE.fullmatch(record.getMessage()):
            return True
        return logging.getLogger(SERVER_LOGGER).getEffectiveLevel() <= logging.DEBUG
