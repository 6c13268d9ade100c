"""nginx and Apache access logs: combined, common, and vhost_combined.

    203.0.113.77 - - [10/Mar/2025:14:02:11 +0000] "GET /index.html HTTP/1.1" 200 5123 "-" "UA"

Request lines that are not `METHOD target PROTOCOL` (TLS bytes sent to a plain-HTTP port,
`-`, a bare path) are kept with `bad_request` set: they are common in scans and are not a
broken log line. The path is also given URL-decoded (twice, for double encoding) in
`url_decoded`, which is what the web rules look at.
"""

import re
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

from incidents.pipeline.parsers.base import WEB, ParsedLine, month_number, normalise_address

_QUOTED = r'"(?P<{name}>(?:[^"\\]|\\.)*)"'
_LINE = re.compile(
    r"^(?:(?P<vhost>[^\s:]+:\d+) )?(?P<ip>\S+) (?P<ident>\S+) (?P<user>\S+) "
    r"\[(?P<time>[^\]]+)\] "
    + _QUOTED.format(name="request")
    + r" (?P<status>\d{3}|-) (?P<size>\d+|-)"
    + r"(?: "
    + _QUOTED.format(name="referer")
    + " "
    + _QUOTED.format(name="ua")
    + r")?(?P<extra>(?: .*)?)$"
)
# Enough of the shape to say "this is an access log line" even when the rest is broken.
_START = re.compile(r"^(?:[^\s:]+:\d+ )?\S+ \S+ \S+ \[\d{1,2}/[A-Za-z]{3}/\d{4}:")
_TIME = re.compile(
    r"^(?P<day>\d{1,2})/(?P<mon>[A-Za-z]{3})/(?P<year>\d{4}):(?P<h>\d{2}):(?P<m>\d{2}):"
    r"(?P<s>\d{2})(?:\.\d+)? (?P<sign>[+-])(?P<oh>\d{2})(?P<om>\d{2})$"
)
_REQUEST = re.compile(
    r"^(?P<method>[A-Z][A-Z_-]{1,15}) (?P<target>\S+)(?: (?P<proto>HTTP/\d(?:\.\d)?))?$"
)


def parse_access_log(raw):
    """An access-log line, or None when the line does not look like one."""
    match = _LINE.match(raw)
    if match is None:
        if _START.match(raw):
            return ParsedLine(
                raw=raw, format="access", category=WEB, malformed=True,
                error="an access log line whose request, status or size part is broken",
            )  # fmt: skip
        return None
    timestamp = parse_clf_time(match.group("time"))
    if timestamp is None:
        return ParsedLine(
            raw=raw, format="access", category=WEB, malformed=True,
            error="the timestamp is not dd/Mon/yyyy:HH:MM:SS +zzzz",
        )  # fmt: skip
    fields = {"src_ip": normalise_address(match.group("ip"))}
    for name in ("ident", "user"):
        if match.group(name) != "-":
            fields[name] = match.group(name)
    if match.group("vhost"):
        fields["vhost"] = match.group("vhost")
    fields["status"] = None if match.group("status") == "-" else int(match.group("status"))
    fields["size"] = 0 if match.group("size") == "-" else int(match.group("size"))
    for name, group in (("referer", "referer"), ("user_agent", "ua")):
        value = match.group(group)
        fields[name] = None if value in (None, "-", "") else _unescape(value)
    if match.group("extra").strip():
        fields["extra"] = match.group("extra").strip()
    request = _unescape(match.group("request"))
    fields["request"] = request
    parsed_request = _REQUEST.match(request)
    if parsed_request:
        target = parsed_request.group("target")
        url_path, _, query = target.partition("?")
        fields.update(
            method=parsed_request.group("method"),
            path=target,
            url_path=url_path,
            query=query,
            protocol=parsed_request.group("proto"),
            url_decoded=url_decode(target),
        )
        action = "http_request"
    else:
        fields.update(method=None, path=None, url_decoded=url_decode(request), bad_request=True)
        action = "bad_request"
    return ParsedLine(
        raw=raw, format="access", category=WEB, action=action, timestamp=timestamp, fields=fields
    )


def parse_clf_time(text):
    """`10/Mar/2025:14:02:11 +0000` -> aware datetime, or None."""
    match = _TIME.match(text)
    if match is None:
        return None
    month = month_number(match.group("mon"))
    if month is None:
        return None
    offset = timedelta(hours=int(match.group("oh")), minutes=int(match.group("om")))
    if match.group("sign") == "-":
        offset = -offset
    try:
        return datetime(
            int(match.group("year")), month, int(match.group("day")),
            int(match.group("h")), int(match.group("m")), int(match.group("s")),
            tzinfo=timezone(offset),
        )  # fmt: skip
    except ValueError:
        return None


def url_decode(text):
    """Percent-decoding applied twice, so `%252e%252e%252f` reads as `../` too."""
    once = unquote(text, errors="replace")
    return unquote(once, errors="replace")


def _unescape(text):
    # nginx writes `"` as \x22 (or \"), and non-printable bytes as \xNN.
    return re.sub(r'\\(["\\])', r"\1", text).replace("\\x22", '"')
