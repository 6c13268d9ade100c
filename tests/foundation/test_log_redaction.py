"""threatlens.logredaction: secrets are masked in messages, JSON and tracebacks."""

import logging

from threatlens import logredaction

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJl"


def test_query_strings_json_and_jwts_are_masked():
    assert logredaction.redact("GET /ws?token=abc123&x=1") == "GET /ws?token=[redacted]&x=1"
    assert logredaction.redact('{"password": "hunter2", "user": "a"}') == (
        '{"password": "[redacted]", "user": "a"}'
    )
    assert TOKEN not in logredaction.redact(f"Authorization: Bearer {TOKEN}")
    assert logredaction.redact("nothing secret here") == "nothing secret here"


def test_a_logged_traceback_is_masked(caplog):
    logredaction.install()
    logger = logging.getLogger("tests.redaction")
    try:
        raise ValueError(f"handshake failed for /ws?token={TOKEN}")
    except ValueError:
        logger.exception("socket failed")
    (record,) = [r for r in caplog.records if r.name == "tests.redaction"]
    text = logging.Formatter().format(record)
    assert "ValueError" in text and "[redacted]" in text
    assert TOKEN not in text
