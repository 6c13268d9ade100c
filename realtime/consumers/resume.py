"""Where a returning client left off, and what it missed meanwhile."""

import logging
from typing import NamedTuple

from channels.db import database_sync_to_async
from django.conf import settings

from realtime import envelopes
from realtime.filters import EventFilter, FilterError
from realtime.replay import missed_events

logger = logging.getLogger(__name__)


class Remembered(NamedTuple):
    """What a named client had when it left: where it was, what it received."""

    position: int
    subscriptions: list
    filter: EventFilter | None


class Resume:
    """A client's way back. A named client (`/ws/<client_id>`) is remembered when it
    leaves (its position, subscriptions and filter) for REALTIME_REPLAY_WINDOW;
    `?since=<message_id>` names the position instead, and skips what was remembered.
    What was published after the position is replayed before live events flow."""

    __slots__ = ("hub", "user_id", "client_id", "remembered")

    def __init__(self, hub, user_id, client_id):
        self.hub = hub
        self.user_id = user_id
        self.client_id = client_id
        self.remembered = None

    @property
    def key(self):
        return f"{self.user_id}:{self.client_id}"

    async def recall(self):
        """What was remembered of this client (a Remembered), or None."""
        try:
            state = await self.hub.store.get_client_state(self.key)
        except Exception as exc:
            logger.warning("could not read %s's state: %s", self.client_id, exc)
            return None
        if state:
            self.remembered = Remembered(
                state["position"], state["subscriptions"], _stored_filter(state.get("filter"))
            )
        return self.remembered

    async def replay(self, connection, since):
        """Send what the client missed since `since` (the `?since=` value, or None for
        the remembered position), then release the live events the connection held."""
        position = await self._position(connection, since)
        if position is None:
            connection.resume()
            return
        events, complete = await database_sync_to_async(missed_events)(connection, position)
        principal = connection.principal
        for event in events:
            await connection.send_text(event.replay_frame(principal, connection.flat))
        connection.events_sent += len(events)
        if events:
            connection.last_event_id = max(connection.last_event_id, events[-1].id)
        self.hub.counters["events_replayed"] += len(events)
        data = {"replayed": len(events), "complete": complete, "since": str(position)}
        await connection.send_text(envelopes.reply("replay_complete", data))
        connection.resume({event.id for event in events})

    async def _position(self, connection, since):
        if since is not None:
            if since.isdigit():
                return int(since)
            await connection.send_text(
                envelopes.error("INVALID_MESSAGE", "since must be a message_id")
            )
            return None
        if self.remembered:
            return self.remembered.position
        return None

    async def remember(self, connection):
        """Keep where the leaving client was, for its next connect."""
        state = {
            "position": connection.resume_position(self.hub.last_event_id),
            "subscriptions": sorted(connection.subscriptions),
            "filter": connection.filter.as_dict() if connection.filter else None,
        }
        try:
            await self.hub.store.set_client_state(
                self.key, state, settings.REALTIME["REPLAY_WINDOW"]
            )
        except Exception as exc:
            logger.warning("could not remember %s's position: %s", self.client_id, exc)


def _stored_filter(data):
    try:
        return EventFilter.parse(data) if data else None
    except FilterError:
        return None  # declared event types changed since it was stored
