"""Syslog: RFC 3164 (BSD, and the form rsyslog writes to files) and RFC 5424.

The header gives timestamp, host, app (tag), pid and, with a PRI, facility and level. The
message is then handed to the parser of its app (sshd, sudo, su, named, PAM), which sets
category and action. A message that is a whole line of another format (nginx or Apache
access logs sent over syslog) is parsed by that format's parser, chosen by the app or,
for other apps, by the message's content; the header's host, app, pid and time are kept.
Other apps' messages are category "system".
"""

import re
from datetime import datetime

from incidents.pipeline.parsers import access, auth, bind, jsonlines
from incidents.pipeline.parsers.base import (
    SYSTEM,
    ParsedLine,
    aware,
    infer_year,
    month_number,
    parse_iso,
)

FACILITIES = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
]  # fmt: skip
LEVELS = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]

_PRI = re.compile(r"^<(\d{1,3})>")
_RFC5424 = re.compile(
    r"^<(?P<pri>\d{1,3})>(?P<version>[1-9]\d{0,2}) (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) "
    r"(?P<procid>\S+) (?P<msgid>\S+)(?: (?P<rest>.*))?$",
    re.DOTALL,
)
_BSD_TS = (
    r"(?P<mon>[A-Za-z]{3})\s+(?P<day>\d{1,2})\s+(?:(?P<year>\d{4})\s+)?"
    r"(?P<hms>\d{2}:\d{2}:\d{2})(?:\.\d+)?"
)
_ISO_TS = r"(?P<iso>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:?\d{2})?)"
_RFC3164_START = re.compile(rf"^(?:<(?P<pri>\d{{1,3}})>)?(?:{_BSD_TS}|{_ISO_TS})(?=\s|$)")
_HOST_AND_TAG = re.compile(
    r"^\s+(?P<host>[^\s:\[]+)\s+(?P<tag>[^\s:\[\]]{1,64})(?:\[(?P<pid>\d+)\])?:(?: |$)(?P<msg>.*)$",
    re.DOTALL,
)
_HOST_ONLY = re.compile(r"^\s+(?P<host>[^\s:\[]+)\s+(?P<msg>\S.*)$", re.DOTALL)

APP_PARSERS = {
    "sshd": auth.parse_sshd,
    "sshd-session": auth.parse_sshd,
    "sudo": auth.parse_sudo,
    "su": auth.parse_su,
    "named": bind.parse_message,
}
# Apps whose message is a whole line of another format (nginx's `access_log syslog:...`,
# Apache's log piped to `logger -t apache2`): that format's parser reads it.
BODY_PARSERS = {
    "nginx": access.parse_access_log,
    "apache": access.parse_access_log,
    "apache2": access.parse_access_log,
    "httpd": access.parse_access_log,
}
# BIND's messages with `print-category yes`, when the app is not `named`.
_BIND_PREFIXES = ("client ", "queries: ", "query-errors: ", "rpz: ")


def parse_syslog(raw, *, reference=None, tz=None):
    """A syslog line of either RFC, or None when it is neither."""
    if _PRI.match(raw) and (match := _RFC5424.match(raw)):
        return _parse_5424(raw, match, tz)
    start = _RFC3164_START.match(raw)
    if start is None:
        if _PRI.match(raw):
            return _broken(raw, "syslog", "a PRI without a valid RFC 3164 or RFC 5424 header")
        return None
    return _parse_3164(raw, start, reference, tz)


def _pri_fields(pri_text):
    pri = int(pri_text)
    if pri > 191:
        return None
    return {"facility": FACILITIES[pri >> 3], "level": LEVELS[pri & 7]}


def _parse_3164(raw, start, reference, tz):
    fields = {}
    if start.group("pri") is not None:
        pri = _pri_fields(start.group("pri"))
        if pri is None:
            return _broken(raw, "syslog", f"PRI {start.group('pri')} is out of range")
        fields.update(pri)
    if start.group("iso"):
        timestamp = parse_iso(start.group("iso").replace(" ", "T", 1), tz)
    else:
        timestamp = _bsd_timestamp(start, reference, tz)
    if timestamp is None:
        return _broken(raw, "syslog", "the timestamp is not a real date")
    rest = raw[start.end() :]
    match = _HOST_AND_TAG.match(rest)
    if match:
        fields.update(host=match.group("host"), app=match.group("tag"))
        if match.group("pid"):
            fields["pid"] = int(match.group("pid"))
        message = match.group("msg")
    else:
        match = _HOST_ONLY.match(rest)
        if match is None:
            return _broken(raw, "syslog", "a timestamp but no host and message", timestamp)
        fields["host"] = match.group("host")
        message = match.group("msg")
    return _finish(raw, "syslog", timestamp, fields, message)


def _bsd_timestamp(start, reference, tz):
    month = month_number(start.group("mon"))
    if month is None:
        return None
    day = int(start.group("day"))
    hour, minute, second = (int(part) for part in start.group("hms").split(":"))
    if start.group("year"):
        try:
            return aware(datetime(int(start.group("year")), month, day, hour, minute, second), tz)
        except ValueError:
            return None
    if not (0 <= hour < 24 and 0 <= minute < 60 and 0 <= second < 61):
        return None
    return infer_year(month, day, hour, minute, min(second, 59), reference=reference, tz=tz)


def _parse_5424(raw, match, tz):
    pri = _pri_fields(match.group("pri"))
    if pri is None:
        return _broken(raw, "syslog5424", f"PRI {match.group('pri')} is out of range")
    fields = dict(pri)
    timestamp = None
    if match.group("ts") != "-":
        timestamp = parse_iso(match.group("ts"), tz)
        if timestamp is None:
            return _broken(raw, "syslog5424", "the timestamp is not RFC 3339")
    for name, group in (("host", "host"), ("app", "app"), ("procid", "procid"), ("msgid", "msgid")):
        if match.group(group) != "-":
            fields[name] = match.group(group)
    if fields.get("procid", "").isdigit():
        fields["pid"] = int(fields["procid"])
    try:
        structured, message = _structured_data(match.group("rest") or "")
    except ValueError as exc:
        return _broken(raw, "syslog5424", str(exc), timestamp)
    if structured:
        fields["structured_data"] = structured
    return _finish(raw, "syslog5424", timestamp, fields, message)


def _structured_data(rest):
    """Split RFC 5424 STRUCTURED-DATA from MSG: `-` or `[id k="v" ...]...`, values escaped
    with backslashes for `"`, `\\` and `]`."""
    if rest.startswith("-"):
        return {}, _message(rest[1:])
    if not rest.startswith("["):
        raise ValueError("structured data must be '-' or start with '['")
    elements = {}
    position = 0
    while position < len(rest) and rest[position] == "[":
        end_id = position + 1
        while end_id < len(rest) and rest[end_id] not in " ]":
            end_id += 1
        sd_id = rest[position + 1 : end_id]
        if not sd_id or end_id >= len(rest):
            raise ValueError("unterminated structured data element")
        params = {}
        position = end_id
        while True:
            if position >= len(rest):
                raise ValueError("unterminated structured data element")
            if rest[position] == "]":
                position += 1
                break
            param = re.compile(r' ([^= \]"]{1,32})="').match(rest, position)
            if param is None:
                raise ValueError(f"bad parameter in structured data element {sd_id!r}")
            position = param.end()
            value = []
            while True:
                if position >= len(rest):
                    raise ValueError("unterminated parameter value in structured data")
                char = rest[position]
                if char == "\\" and position + 1 < len(rest) and rest[position + 1] in '"\\]':
                    value.append(rest[position + 1])
                    position += 2
                elif char == '"':
                    position += 1
                    break
                else:
                    value.append(char)
                    position += 1
            params[param.group(1)] = "".join(value)
        elements[sd_id] = params
    return elements, _message(rest[position:])


def _message(text):
    if text.startswith(" "):
        text = text[1:]
    return text.removeprefix("\ufeff")


def _finish(raw, fmt, timestamp, fields, message):
    fields["message"] = message
    app = fields.get("app")
    parser = APP_PARSERS.get(app)
    if parser is None:
        body_parser = BODY_PARSERS.get(app)
        # Other apps: an access-log line has `] "` between its time and its request; an
        # application that logs JSON objects to syslog sends one as its message.
        if body_parser is None and '] "' in message:
            body_parser = access.parse_access_log
        elif body_parser is None and message.startswith("{"):
            body_parser = _json_body
        if body_parser is not None and (body := body_parser(message)) is not None:
            return _with_body(raw, fmt, timestamp, fields, body)
        if message.startswith("pam_"):
            parser = auth.parse_pam
        elif message.startswith(_BIND_PREFIXES):
            parser = bind.parse_message
    result = parser(message) if parser else None
    if result is None:
        return ParsedLine(
            raw=raw, format=fmt, category=SYSTEM, action="log", timestamp=timestamp, fields=fields
        )
    category, action, extra = result
    fields.update(extra)
    return ParsedLine(
        raw=raw, format=fmt, category=category, action=action, timestamp=timestamp, fields=fields
    )


def _json_body(message):
    """A message that is a JSON object, as the JSON-lines parser reads it; None when it
    is not valid JSON (then it stays a plain message, not a malformed line)."""
    body = jsonlines.parse_json_line(message)
    return None if body is None or body.malformed else body


def _with_body(raw, fmt, timestamp, fields, body):
    """The line as its body's parser read it, with the syslog header's fields and time
    (the body's time when the header has none)."""
    return ParsedLine(
        raw=raw,
        format=fmt,
        category=body.category,
        action=body.action,
        timestamp=timestamp or body.timestamp,
        fields={**body.fields, **fields, "body_format": body.format},
        malformed=body.malformed,
        error=body.error,
    )


def _broken(raw, fmt, error, timestamp=None):
    return ParsedLine(raw=raw, format=fmt, timestamp=timestamp, malformed=True, error=error)
