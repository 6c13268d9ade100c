"""No secret in any log line: tokens, cookies and passwords are masked before a line is
written, whoever writes it.

Servers log request lines: uvicorn every accepted socket with its query string (`GET
/ws?token=eyJ...`), at INFO and even with `--no-access-log`; the websockets library its
handshake at DEBUG; daphne's access log every HTTP request with its query string. None of
them offer a hook per line, and their loggers differ by server and version, so a filter
on named loggers would miss some. Instead:

- every log record is masked as it is made (`logging.setLogRecordFactory`, the public
  hook that sees records of every logger, before any handler or filter);
- daphne's access log, which writes to a stream instead of through `logging`, is masked
  in `AccessLogGenerator.write_entry` (its one writer; left alone should it not exist).

What is masked: query parameters and cookies whose names carry secrets, `Authorization`
values, and anything shaped like a JWT wherever it appears.
"""

import logging
import re

SECRET_NAMES = (
    r"(?:access_?token|refresh_?token|token|access|refresh|password|passwd|secret|api_?key|"
    r"sessionid|csrftoken|csrfmiddlewaretoken)"
)
MASK = "[redacted]"

_PATTERNS = (
    # name=value in query strings, form bodies and cookie headers
    (re.compile(rf"(?i)(\b{SECRET_NAMES}=)[^&;\s\"',]+"), rf"\1{MASK}"),
    # Authorization: Bearer <token> / Basic <credentials>
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {MASK}"),
    # "name": "value" in JSON (request bodies, payloads in messages)
    (re.compile(rf'(?i)("{SECRET_NAMES}"\s*:\s*")[^"]*'), rf"\1{MASK}"),
    # a JWT anywhere (header.payload.signature, the header starting with `{"`)
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), MASK),
)
_QUICK = re.compile(rf'(?i)eyJ|bearer|basic|{SECRET_NAMES}(?:=|"\s*:)')


def redact(text):
    """`text` with every secret it carries masked."""
    if not _QUICK.search(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_installed = False
_traceback_formatter = logging.Formatter()


def install():
    """Mask secrets in every log record and in daphne's access log (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def redacting_record_factory(*args, **kwargs):
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:
            return record  # a broken format string: logging reports it itself
        masked = redact(message)
        if masked is not message and masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            # A traceback is formatted by handlers later, from exc_info: format it now,
            # masked, and handlers use this text (logging.Formatter keeps a set exc_text).
            record.exc_text = redact(_traceback_formatter.formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(redacting_record_factory)
    _install_daphne_access_log()


def _install_daphne_access_log():
    try:
        from daphne.access import AccessLogGenerator
    except ImportError:
        return
    write_entry = getattr(AccessLogGenerator, "write_entry", None)
    if write_entry is None:
        return

    def write_redacted_entry(self, *args, **kwargs):
        args = tuple(redact(value) if isinstance(value, str) else value for value in args)
        kwargs = {
            name: redact(value) if isinstance(value, str) else value
            for name, value in kwargs.items()
        }
        return write_entry(self, *args, **kwargs)

    AccessLogGenerator.write_entry = write_redacted_entry
