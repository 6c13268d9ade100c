"""Frames the server sends, built in one place (DESIGN.md "Envelopes").

Event frames are assembled around the payload's JSON text, which is encoded once per
event, so that fanning an event out to many connections never re-encodes it.
"""

import itertools
import json
import uuid
from datetime import UTC, datetime

from django.core.serializers.json import DjangoJSONEncoder

from realtime.catalogue import priority_label

_encoder = DjangoJSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode(value):
    """Compact JSON text; dates, decimals and UUIDs as Django's encoder writes them."""
    return _encoder.encode(value)


def iso(moment):
    """ISO 8601 in UTC with a `Z`, as the protocol documents write times."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_timestamp(seconds):
    """ISO 8601 (UTC, `Z`) of a `time.time()` value."""
    return iso(datetime.fromtimestamp(seconds, UTC))


def now_iso():
    return iso(datetime.now(UTC))


def event_frame(entry, *, message_id, data_json, timestamp, priority, replayed=False):
    """The text of one event frame in the envelope its family uses."""
    tail = ',"replayed":true}' if replayed else "}"
    if entry.typed:
        return (
            f'{{"type":{encode(entry.name)},"data":{data_json},"timestamp":"{timestamp}",'
            f'"message_id":"{message_id}","priority":{priority}{tail}'
        )
    return (
        f'{{"type":"event","event_type":{encode(entry.name)},"data":{data_json},'
        f'"timestamp":"{timestamp}","id":"{message_id}",'
        f'"priority":"{priority_label(priority)}"{tail}'
    )


def flat_event_frame(entry, *, message_id, data_json, timestamp, priority, replayed=False):
    """The text of one event frame in the flat envelope of the DNS management server's
    frontends (`/api/websocket/ws...`, or `?envelope=flat` on `/ws`), for every family:
    `{"type": "<event_type>", "data", "timestamp", "priority": "<label>", "metadata"}`.
    The message id (for `?since=`) rides in `metadata`; such frames are never batched."""
    tail = ',"replayed":true}' if replayed else "}"
    return (
        f'{{"type":{encode(entry.name)},"data":{data_json},"timestamp":"{timestamp}",'
        f'"priority":"{priority_label(priority)}","metadata":{{"message_id":"{message_id}",'
        f'"family":"{entry.family}","priority_level":{priority}}}{tail}'
    )


# Batch ids: unique within a process run (a uuid per batch frame showed in profiles).
_BATCH_PREFIX = f"batch_{uuid.uuid4().hex[:8]}_"
_batch_numbers = itertools.count(1)


def batch_frame(event_frames):
    """One `batch` frame of unified event frames, joined as text."""
    return (
        f'{{"type":"batch","events":[{",".join(event_frames)}],'
        f'"batch_id":"{_BATCH_PREFIX}{next(_batch_numbers)}","timestamp":"{now_iso()}"}}'
    )


def reply(reply_type, data=None, *, request_id=None, **top_level):
    """A reply or notice frame: `{"type", "data", "timestamp"}` plus the request's `id`."""
    frame = {"type": reply_type, "data": data if data is not None else {}, "timestamp": now_iso()}
    frame.update(top_level)
    if request_id is not None:
        frame["id"] = request_id
    return encode(frame)


def error(error_code, message, *, details=None, request_id=None):
    """The one error frame that serves all three documents' clients."""
    frame = {
        "type": "error",
        "error_code": error_code,
        "message": message,
        "details": details or {},
        "timestamp": now_iso(),
        "data": {"error": message, "message": message, "error_code": error_code},
    }
    if request_id is not None:
        frame["id"] = request_id
    return encode(frame)


def decode(text):
    return json.loads(text)
