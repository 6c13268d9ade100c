"""threatlens.serverlog: uvicorn's line per WebSocket is left out unless it logs at debug
(the audit log has a row per socket); its other lines, and other loggers', are kept."""

import logging

import pytest

from threatlens import logredaction

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJl"


@pytest.fixture
def server_log(caplog):
    """uvicorn's logger at its default level (info), its lines captured."""
    logredaction.install()  # as in the server: lines are masked before the filter sees them
    logger = logging.getLogger("uvicorn.error")
    level = logger.level
    logger.setLevel(logging.INFO)
    caplog.set_level(logging.INFO)
    yield logger, caplog
    logger.setLevel(level)


def socket_lines(logger):
    logger.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", f"/ws?token={TOKEN}")
    logger.info('%s - "WebSocket %s" %d', "127.0.0.1:5000", "/api/websocket/ws", 404)
    logger.info("connection open")
    logger.info("connection closed")


def test_lines_per_socket_are_left_out_at_info(server_log):
    logger, caplog = server_log
    socket_lines(logger)
    logger.info("Uvicorn running on %s", "http://127.0.0.1:8000")
    logger.warning('%s - "WebSocket %s" 403', "127.0.0.1:5000", "/ws")  # not info: kept
    logging.getLogger("realtime.tests").info("connection open")  # another logger's
    assert [r.getMessage() for r in caplog.records] == [
        "Uvicorn running on http://127.0.0.1:8000",
        '127.0.0.1:5000 - "WebSocket /ws" 403',
        "connection open",
    ]


def test_at_debug_they_are_written_masked(server_log):
    logger, caplog = server_log
    logger.setLevel(logging.DEBUG)
    socket_lines(logger)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == '127.0.0.1:5000 - "WebSocket /ws?token=[redacted]" [accepted]'
    assert len(messages) == 4
