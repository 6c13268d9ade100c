"""A fake socket and small factories for driving connections and the hub directly."""

import asyncio
import json

from realtime import catalogue
from realtime.access import Principal
from realtime.connection import Connection
from realtime.outgoing import OutgoingEvent

PRINCIPAL = Principal(
    user_id=1,
    username="alice",
    role="analyst",
    group_ids=frozenset(),
    permissions=frozenset(),
    is_superuser=True,
)


class FakeSocket:
    """Records frames; `stuck` makes sends wait until released, like a full TCP window."""

    def __init__(self):
        self.frames = []
        self.texts = []  # the frame texts as sent, for identity checks
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, message):
        await self.gate.wait()
        self.texts.append(message["text"])
        self.frames.append(json.loads(message["text"]))

    def events(self):
        out = []
        for frame in self.frames:
            out.extend(frame["events"] if frame["type"] == "batch" else [frame])
        return out


_ids = iter(range(1, 1_000_000))


def message(event_type="health_update", priority=None, *, users=None, **data):
    """A hub message for a new event, as the layer or the event table brings it."""
    return {
        "type": "hub.event",
        "id": next(_ids),
        "event_type": event_type,
        "priority": priority or catalogue.get(event_type).priority,
        "timestamp": "2026-01-01T00:00:00Z",
        "data": json.dumps(data),
        "users": users,
    }


def event(event_type="health_update", priority=None, **data):
    return OutgoingEvent(message(event_type, priority, **data), catalogue.get(event_type))


def connection(
    socket, *, capacity=1000, batch_window=0.05, overflowed=None, principal=PRINCIPAL, name="c1"
):
    conn = Connection(
        send=socket.send,
        connection_id=name,
        client_id=name,
        principal=principal,
        capacity=capacity,
        batch_window=batch_window,
        on_overflow=overflowed.append if overflowed is not None else (lambda c: None),
    )
    conn.subscriptions = catalogue.names()
    return conn
