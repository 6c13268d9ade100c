"""JSON lines: one JSON object per line, from applications, shippers or ECS-style loggers.

Common key spellings are mapped onto the shared field names (timestamp/time/@timestamp,
level/severity, message/msg, src_ip/source_ip/client_ip, user/username, host...); nested
objects are read through dotted names (`{"source": {"ip": ...}}` as `source.ip`). Category
and action come from explicit keys when present (`category`, `event.category`, `action`,
`event.action`, `event.outcome`), else from what the line carries (an HTTP request, a DNS
query, a login message).
"""

import json
import re

from incidents.pipeline.parsers.access import url_decode
from incidents.pipeline.parsers.base import (
    AUTHENTICATION,
    AUTHORIZATION,
    CATEGORIES,
    DNS,
    SYSTEM,
    UNKNOWN,
    WEB,
    ParsedLine,
    normalise_address,
    parse_epoch,
    parse_iso,
)
from incidents.pipeline.parsers.bind import domain_fields

# Shared field name -> keys to try, first present wins.
KEYS = {
    "timestamp": ("timestamp", "@timestamp", "time", "ts", "datetime", "date", "event.created"),
    "level": ("level", "severity", "log.level", "loglevel", "levelname"),
    "message": ("message", "msg", "log", "event.original"),
    "src_ip": (
        "src_ip", "source_ip", "client_ip", "remote_addr", "remote_ip", "ip", "source.ip",
        "client.ip", "source.address",
    ),
    "user": ("user", "username", "user.name", "usr", "account", "login"),
    "host": ("host", "hostname", "host.name", "host.hostname"),
    "service": ("service", "service.name", "app", "application", "program", "logger"),
    "dst": ("dst", "dest_ip", "destination_ip", "destination.ip", "server_ip"),
    "port": ("port", "src_port", "source.port", "client.port"),
    "method": ("method", "http_method", "http.request.method", "request_method"),
    "path": ("path", "url", "uri", "request_uri", "url.original", "url.path"),
    "status": ("status", "status_code", "http_status", "http.response.status_code"),
    "user_agent": ("user_agent", "useragent", "ua", "user_agent.original", "http_user_agent"),
    "domain": ("domain", "query", "qname", "dns.question.name"),
    "qtype": ("qtype", "query_type", "dns.question.type"),
    "command": ("command", "cmd", "process.command_line"),
}  # fmt: skip
_CATEGORY_KEYS = ("category", "event.category", "event_category")
_ACTION_KEYS = ("action", "event.action", "event", "event_type", "type")
_OUTCOME_KEYS = ("outcome", "event.outcome", "result")

_ACTION_SYNONYMS = {
    "login_failure": {
        "login_failure", "login_failed", "failed_login", "auth_failure", "auth_failed",
        "authentication_failure", "authentication_failed", "user_login_failed", "logon_failure",
    },
    "login_success": {
        "login_success", "login_succeeded", "logged_in", "auth_success", "authentication_success",
        "user_login", "logon", "logon_success",
    },
    "logout": {"logout", "logged_out", "user_logout", "logoff"},
}  # fmt: skip
_ACTIONS = {synonym: action for action, words in _ACTION_SYNONYMS.items() for synonym in words}
_LOGIN_WORDS = ("login", "logon", "authenticate", "sign_in", "signin")
_FAILED_LOGIN = re.compile(
    r"(?i)\b(failed (?:login|logon|password|authentication)|login failed|authentication failed|"
    r"invalid (?:password|credentials))\b"
)
_SUCCESSFUL_LOGIN = re.compile(
    r"(?i)\b(login succeeded|successful login|logged in|authenticated)\b"
)


def parse_json_line(raw):
    """A JSON-object line, or None when the line does not start like one."""
    text = raw.strip()
    if not text.startswith("{"):
        return None
    try:
        document = json.loads(text)
    except ValueError as exc:
        return ParsedLine(raw=raw, format="json", malformed=True, error=f"invalid JSON: {exc}")
    if not isinstance(document, dict):
        return ParsedLine(raw=raw, format="json", malformed=True, error="not a JSON object")
    flat = _flatten(document)
    fields = {}
    for name, keys in KEYS.items():
        value = _first(flat, keys)
        if value is not None:
            fields[name] = value
    timestamp = _timestamp(fields.pop("timestamp", None))
    _normalise(fields)
    category, action = _classify(flat, fields)
    fields["document"] = document
    return ParsedLine(
        raw=raw, format="json", category=category, action=action, timestamp=timestamp,
        fields=fields,
    )  # fmt: skip


def _flatten(document, prefix=""):
    flat = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
            # {"user": {"name": "x"}} also answers "user" through "user.name".
        else:
            flat[name] = value
    return flat


def _first(flat, keys):
    for key in keys:
        value = flat.get(key)
        if value not in (None, "", []):
            return value
    return None


def _timestamp(value):
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return parse_epoch(value)
    if isinstance(value, str):
        if re.fullmatch(r"\d{9,13}(?:\.\d+)?", value):
            return parse_epoch(value)
        return parse_iso(value.replace(" ", "T", 1) if "T" not in value else value)
    return None


def _normalise(fields):
    for name in ("src_ip", "dst"):
        if isinstance(fields.get(name), str):
            fields[name] = normalise_address(fields[name])
    for name in ("status", "port"):
        value = fields.get(name)
        if isinstance(value, str) and value.isdigit():
            fields[name] = int(value)
        elif not isinstance(value, int) or isinstance(value, bool):
            fields.pop(name, None)
    for name in ("user", "host", "service", "level", "message", "method", "command"):
        if name in fields and not isinstance(fields[name], str):
            fields[name] = (
                json.dumps(fields[name]) if isinstance(fields[name], list) else str(fields[name])
            )
    if isinstance(fields.get("path"), str):
        fields["url_path"], _, fields["query"] = fields["path"].partition("?")
        fields["url_decoded"] = url_decode(fields["path"])
    if isinstance(fields.get("domain"), str) and fields["domain"]:
        fields.update(domain_fields(fields["domain"]))


def _word(value):
    return str(value).strip().lower().replace("-", "_").replace(" ", "_")


def _classify(flat, fields):
    category = None
    explicit = _first(flat, _CATEGORY_KEYS)
    if isinstance(explicit, list):
        explicit = explicit[0] if explicit else None
    if explicit is not None and _word(explicit) in CATEGORIES and _word(explicit) != UNKNOWN:
        category = _word(explicit)
    raw_action = _first(flat, _ACTION_KEYS)
    action = _word(raw_action) if isinstance(raw_action, str | int) else None
    outcome = _first(flat, _OUTCOME_KEYS)
    outcome = _word(outcome) if isinstance(outcome, str | bool) else None
    if action in _ACTIONS:
        action = _ACTIONS[action]
    elif (action is None and category == AUTHENTICATION) or (
        action and any(word in action for word in _LOGIN_WORDS)
    ):
        # ECS style: {"event": {"category": "authentication", "action": "ssh_login",
        # "outcome": "failure"}}.
        if outcome in ("failure", "failed", "false", "fail"):
            action = "login_failure"
        elif outcome in ("success", "succeeded", "true", "ok"):
            action = "login_success"
    if action is None or action not in _ACTION_SYNONYMS:
        message = fields.get("message") or ""
        if _FAILED_LOGIN.search(message):
            action = "login_failure"
        elif _SUCCESSFUL_LOGIN.search(message) and "user" in fields:
            action = action or "login_success"
    if action in _ACTION_SYNONYMS:
        return category or AUTHENTICATION, action
    if category is None:
        if "path" in fields and ("status" in fields or "method" in fields):
            category, action = WEB, action or "http_request"
        elif "domain" in fields and "qtype" in fields:
            category, action = DNS, action or "query"
        elif "command" in fields and "user" in fields:
            category, action = AUTHORIZATION, action or "command"
        else:
            category = SYSTEM
    return category, action or "log"
