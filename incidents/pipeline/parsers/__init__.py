"""Log line parsers. `parse_line` is the one entry point.

    >>> parsed = parse_line("Mar 10 14:02:11 web01 sshd[811]: Failed password for root "
    ...                     "from 203.0.113.45 port 51234 ssh2")
    >>> parsed.category, parsed.action, parsed.fields["src_ip"]
    ('authentication', 'login_failure', '203.0.113.45')

Formats: syslog RFC 3164 (also the RFC 3339 timestamps rsyslog writes by default today)
and RFC 5424, with sshd, sudo, su, PAM and named messages understood; nginx/Apache access
logs; BIND query logs; JSON lines. A line no parser recognises comes back with category
"unknown"; a line where a known format clearly started but broke comes back with
`malformed=True` and an `error`. Neither raises.
"""

from incidents.pipeline.parsers.access import parse_access_log
from incidents.pipeline.parsers.base import CATEGORIES, ParsedLine
from incidents.pipeline.parsers.bind import parse_query_log
from incidents.pipeline.parsers.jsonlines import parse_json_line
from incidents.pipeline.parsers.syslog import parse_syslog

__all__ = ["CATEGORIES", "FORMATS", "SOURCE_HINTS", "ParsedLine", "parse_line", "parser_for_hint"]

FORMATS = ("syslog", "syslog5424", "access", "bind", "json", "unknown")

# A source hint names the parser to try first (others are still tried if it does not
# recognise the line: a hint is a preference, not a promise about every line).
SOURCE_HINTS = {
    "syslog": "syslog", "auth": "syslog", "auth.log": "syslog", "secure": "syslog",
    "messages": "syslog", "sshd": "syslog", "sudo": "syslog",
    "access": "access", "access.log": "access", "nginx": "access", "apache": "access",
    "httpd": "access", "http": "access", "web": "access",
    "bind": "bind", "named": "bind", "dns": "bind", "query": "bind", "queries": "bind",
    "queries.log": "bind",
    "json": "json", "jsonl": "json", "ndjson": "json", "json_lines": "json",
}  # fmt: skip

MAX_LINE_LENGTH = 65536


def _parsers(reference, tz):
    return {
        "json": parse_json_line,
        "syslog": lambda raw: parse_syslog(raw, reference=reference, tz=tz),
        "access": parse_access_log,
        "bind": lambda raw: parse_query_log(raw, tz=tz),
    }


def parse_line(line, *, source_hint=None, reference=None, tz=None):
    """Parse one log line. Never raises for any input text.

    `source_hint` (e.g. "auth.log", "nginx", "bind", "json", or a file name ending in one of
    them) picks the parser tried first. `reference` is the "now" used to give RFC 3164
    timestamps a year (default: the current time); `tz` is the zone of timestamps written
    without one (default: Django's TIME_ZONE).
    """
    raw = line.rstrip("\r\n") if isinstance(line, str) else _decode(line)
    if not raw.strip():
        return ParsedLine(raw=raw)
    if len(raw) > MAX_LINE_LENGTH:
        return ParsedLine(
            raw=raw[:MAX_LINE_LENGTH], malformed=True,
            error=f"line longer than {MAX_LINE_LENGTH} characters",
        )  # fmt: skip
    parsers = _parsers(reference, tz)
    order = ["json", "syslog", "access", "bind"]
    preferred = _hinted(source_hint)
    if preferred:
        order.remove(preferred)
        order.insert(0, preferred)
    for name in order:
        try:
            parsed = parsers[name](raw)
        except Exception as exc:  # A parser bug must not stop an ingest: report the line.
            return ParsedLine(raw=raw, format=name, malformed=True, error=f"parser error: {exc!r}")
        if parsed is not None:
            return parsed
    return ParsedLine(raw=raw)


def parser_for_hint(source_hint):
    """The parser a source hint names ("syslog", "access", "bind", "json"), or None when
    the hint names none (then every parser is tried in the default order)."""
    return _hinted(source_hint)


def _hinted(source_hint):
    if not source_hint:
        return None
    hint = str(source_hint).strip().lower()
    if hint in SOURCE_HINTS:
        return SOURCE_HINTS[hint]
    # A path or file name: "/var/log/nginx/access.log.1", "auth.log.2.gz", "queries.log".
    name = hint.rsplit("/", 1)[-1]
    for key in sorted(SOURCE_HINTS, key=len, reverse=True):
        if key in name or key in hint:
            return SOURCE_HINTS[key]
    return None


def _decode(line):
    if isinstance(line, bytes | bytearray):
        return bytes(line).decode("utf-8", errors="replace").rstrip("\r\n")
    return str(line).rstrip("\r\n")
