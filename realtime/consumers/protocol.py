"""What a client sends over a socket, read and checked: frames, request fields, the
filter of the query string; and the errors and close codes it gets back (DESIGN.md)."""

import json
import re
from typing import NamedTuple

from django.conf import settings

from realtime.filters import EventFilter, FilterError

CLIENT_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013

QUERY_FILTER = ("event_types", "categories", "sources", "min_priority", "max_priority")


class ProtocolError(Exception):
    """A client message that gets an error frame; the connection goes on."""

    def __init__(self, error_code, message, details=None):
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.details = details


class Refusal(NamedTuple):
    """An error frame followed by a close (`SocketConsumer.refuse(*refusal)`)."""

    error_code: str
    message: str
    close_code: int
    details: dict | None = None


def invalid(message, **details):
    return ProtocolError("INVALID_MESSAGE", message, details or None)


def read_message(text):
    """The message object of a text frame; None for the bare-text keepalive `ping`.
    Raises ProtocolError for a binary, oversized or malformed frame."""
    if text is None:
        raise invalid("Binary frames are not supported: send JSON text")
    limit = settings.REALTIME["MAX_FRAME_BYTES"]
    if len(text) > limit or len(text.encode("utf-8")) > limit:
        raise invalid(f"Frame larger than {limit} bytes")
    if text.strip() == "ping":
        return None
    return _parse(text)


def _parse(text):
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise invalid("Invalid JSON") from None
    # JSON may escape a lone surrogate (`"\ud800"`), which no reply echoing it could
    # encode as UTF-8: refused here, before any of it reaches a reply. Only frames with a
    # `\u` escape of a surrogate are checked, so the common frame costs a substring search.
    if _SURROGATE_ESCAPE.search(text) and not _encodable(message):
        raise invalid("Strings must be valid Unicode (no unpaired surrogates)")
    if not isinstance(message, dict):
        raise invalid("A message must be a JSON object")
    kind = message.get("type")
    if kind is None:
        raise invalid("Missing message type")
    if not isinstance(kind, str) or not kind:
        raise invalid("Message type must be a non-empty string")
    return message


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _encodable(message):
    try:
        json.dumps(message, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def request_id(message):
    """The message's `id`, echoed in its replies (a string or an integer, else None)."""
    value = message.get("id")
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def request_data(message):
    """The fields of a request: its `data` object."""
    data = message.get("data")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise invalid("data must be an object")
    return data


def auth_token(message):
    """The token of an `auth` message: `data.token`, or `token` at the top level."""
    data = message.get("data")
    token = data.get("token") if isinstance(data, dict) else None
    if token is None:
        token = message.get("token")
    if not isinstance(token, str) or not token:
        raise invalid("auth needs data.token")
    return token


def string_list(data, name):
    """A request's list of event type names (at most 200)."""
    value = data.get(name)
    if value is None:
        raise invalid(f"Invalid subscription request: missing {name}")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid(f"{name} must be a list of strings")
    if len(value) > 200:
        raise invalid(f"{name} may name at most 200 event types")
    return value


def query_filter(query):
    """(the filter given in the query string or None, what is wrong with it or None)."""
    given = {name: query[name] for name in QUERY_FILTER if name in query}
    if not given:
        return None, None
    data = {}
    for name, value in given.items():
        if name.endswith("priority"):
            data[name] = int(value) if value.lstrip("-").isdigit() else value
        else:
            data[name] = [item for item in value.split(",") if item]
    try:
        return EventFilter.parse(data), None
    except FilterError as exc:
        return None, str(exc)
