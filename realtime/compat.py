"""What the DNS management server's own frontends need from the hub (docs/migrating.md).

Those frontends connect to `/api/websocket/ws` and `/api/websocket/ws/<connection_type>`,
route on `message.type` being the event name (the flat envelope,
`envelopes.flat_event_frame`), send `event_types` at the top level of `subscribe`, and send
five requests the protocol documents do not have: `get_recent_events`, `start_replay`,
`stop_replay`, `get_replay_status` and `emit_event`. The hub consumers here answer all of
that on every hub path; the flat envelope is the default on the `/api/websocket/` paths
and chosen with `?envelope=flat` on `/ws`.
"""

import uuid
from datetime import datetime

from channels.db import database_sync_to_async

from realtime import access, envelopes
from realtime.catalogue import (
    PRIORITY_CRITICAL,
    PRIORITY_HIGH,
    PRIORITY_LOW,
    PRIORITY_MEDIUM,
    PUBLISH,
)
from realtime.consumers.hub_socket import (
    ADMIN_MESSAGES,
    LEGACY_TOPICS,
    SUBSCRIPTION_MESSAGES,
    HubConsumer,
)
from realtime.consumers.limits import RateLimits
from realtime.consumers.protocol import ProtocolError, invalid, string_list
from realtime.publishing import PublishError, publish
from realtime.replay import stored_events

ENVELOPES = ("documented", "flat")
RECENT_EVENTS_DEFAULT = 50
# The DNS frontend names priorities; the server keeps integers (DESIGN.md "Envelopes").
PRIORITY_NAMES = {
    "low": PRIORITY_LOW,
    "normal": PRIORITY_MEDIUM,
    "medium": PRIORITY_MEDIUM,
    "high": PRIORITY_HIGH,
    "critical": PRIORITY_CRITICAL,
}
# Fields of a message that are never request fields.
ENVELOPE_KEYS = frozenset({"type", "id", "data"})


class CompatibleHubConsumer(HubConsumer):
    """The hub socket (`/ws`, `/ws/<client_id>`, `/api/websocket/ws`) with what the DNS
    frontends send: top-level request fields, the five extra requests, the flat envelope."""

    handlers = {
        **HubConsumer.handlers,
        "get_recent_events": "handle_get_recent_events",
        "start_replay": "handle_start_replay",
        "stop_replay": "handle_stop_replay",
        "get_replay_status": "handle_get_replay_status",
        "emit_event": "handle_emit_event",
    }
    replay = None  # the last `start_replay`, a StoredReplay
    # Rate limited like the other administrative commands, for non-admins.
    rate_limits = RateLimits(
        subscription_messages=SUBSCRIPTION_MESSAGES,
        admin_messages=ADMIN_MESSAGES | {"emit_event", "start_replay"},
    )

    def flat_envelope(self):
        chosen = self.query.get("envelope")
        if chosen is None:
            return self.scope["url_route"]["kwargs"].get("envelope") == "flat"
        return chosen == "flat"

    async def greet(self):
        await super().greet()
        chosen = self.query.get("envelope")
        if chosen is not None and chosen not in ENVELOPES:
            await self.send_error(
                "INVALID_MESSAGE",
                f"Unknown envelope {chosen!r}: use one of {', '.join(ENVELOPES)}",
                details={"envelope": chosen},
            )

    def request_data(self, kind, message):
        """The request's `data`, plus fields given at the top level of the message (the
        DNS frontend's `{"type": "subscribe", "event_types": [...]}`); `data` wins."""
        data = super().request_data(kind, message)
        if kind == "emit_event" and "event_type" in message:
            # `{"type": "emit_event", "event_type": ..., "data": {payload}}`
            return {
                "event_type": message["event_type"],
                "data": data,
                "priority": message.get("priority"),
            }
        top_level = {key: value for key, value in message.items() if key not in ENVELOPE_KEYS}
        return {**top_level, **data} if top_level else data

    # --- recent events and replay ----------------------------------------------------------

    async def handle_get_recent_events(self, data, request_id):
        names, refused = self.requested_types(data, default=self.connection.allowed)
        limit = _positive_int(data, "limit", RECENT_EVENTS_DEFAULT)
        events = await database_sync_to_async(stored_events)(self.principal, names, newest=limit)
        await self.send_reply(
            "recent_events",
            {
                "events": [self.event_dict(event) for event in events],
                "count": len(events),
                "event_types": sorted(names),
                "refused": refused,
            },
            request_id=request_id,
        )

    async def handle_start_replay(self, data, request_id):
        names, refused = self.requested_types(data, default=self.connection.subscriptions)
        events = await database_sync_to_async(stored_events)(
            self.principal,
            names,
            after=_message_id(data.get("since")),
            start=_time(data, "start_time"),
            end=_time(data, "end_time"),
        )
        replay = self.replay = StoredReplay(names, len(events))
        await self.send_reply(
            "replay_started", {**replay.status, "refused": refused}, request_id=request_id
        )
        await replay.run(self.connection, events)
        await self.send_reply("replay_complete", dict(replay.status), request_id=request_id)

    async def handle_stop_replay(self, data, request_id):
        replay = self.replay
        await self.send_reply(
            "replay_stopped",
            {
                "stopped": replay.stop() if replay else False,
                "replay_id": replay.status["replay_id"] if replay else None,
            },
            request_id=request_id,
        )

    async def handle_get_replay_status(self, data, request_id):
        replay = self.replay
        await self.send_reply(
            "replay_status",
            dict(replay.status) if replay else {"active": False, "replay_id": None},
            request_id=request_id,
        )

    def requested_types(self, data, *, default):
        """(event types asked for that the user may receive, refusals of the others)."""
        if data.get("event_types") is None:
            return set(default), []
        accepted, refused = self.check_event_types(string_list(data, "event_types"))
        return set(accepted), refused

    def event_dict(self, event):
        """One stored event as the connection would have received it live."""
        return envelopes.decode(event.frame_for(self.principal, self.connection.flat))

    # --- publishing ------------------------------------------------------------------------

    async def handle_emit_event(self, data, request_id):
        if not self.principal.has_perm(PUBLISH):
            raise ProtocolError(
                "PERMISSION_DENIED",
                "emit_event needs the permission to publish events (realtime.publish_event)",
            )
        published = await database_sync_to_async(_publish_checked)(data)
        await self.send_reply("event_emitted", published, request_id=request_id)
        await self.audit_log.request(self.principal, "realtime.emit_event", published)


class CompatibleTopicConsumer(CompatibleHubConsumer):
    """`/api/websocket/ws/<connection_type>`: the DNS frontend's per-topic sockets, the
    hub with that topic's event types subscribed (those of `/ws/<topic>/<user_id>`)."""

    def initial_subscriptions(self):
        items = LEGACY_TOPICS[self.scope["url_route"]["kwargs"]["topic"]]
        items = (items,) if isinstance(items, str) else items
        return access.expand(items, self.connection.allowed)


class StoredReplay:
    """A `start_replay`: stored events sent one by one until all are, or `stop_replay`
    comes; its status answers `get_replay_status`."""

    __slots__ = ("status",)

    def __init__(self, names, total):
        self.status = {
            "replay_id": f"replay_{uuid.uuid4().hex[:12]}",
            "active": True,
            "event_types": sorted(names),
            "total": total,
            "replayed": 0,
            "started_at": envelopes.now_iso(),
        }

    async def run(self, connection, events):
        status = self.status
        for event in events:
            if not status["active"]:
                break  # stop_replay came in between
            await connection.send_text(event.replay_frame(connection.principal, connection.flat))
            status["replayed"] += 1
        complete = status["replayed"] == len(events)
        status.update(active=False, finished_at=envelopes.now_iso(), complete=complete)

    def stop(self):
        """Whether a replay was running (it stops after the event being sent)."""
        running = self.status["active"]
        self.status["active"] = False
        return running


def _publish_checked(data):
    from realtime.serializers import PublishSerializer

    fields = dict(data)
    priority = fields.get("priority")
    if priority is None:
        fields.pop("priority", None)
    elif isinstance(priority, str) and priority.lower() in PRIORITY_NAMES:
        fields["priority"] = PRIORITY_NAMES[priority.lower()]

    serializer = PublishSerializer(data=fields)
    if not serializer.is_valid():
        raise invalid("Invalid event", errors=serializer.errors)
    values = serializer.validated_data
    try:
        event = publish(
            values["event_type"],
            values["data"],
            priority=values.get("priority"),
            recipients=values.get("recipients"),
        )
    except PublishError as exc:
        raise invalid(f"Invalid event: {exc}") from None
    return {"message_id": event.message_id, "event_type": event.event_type}


def _message_id(value):
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise invalid("since must be a message_id")
    return value


def _positive_int(data, name, default):
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**31:
        raise invalid(f"{name} must be a positive integer")
    return value


def _time(data, name):
    value = data.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"{name} must be an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise invalid(f"{name} needs a time zone (e.g. a trailing Z)")
    return moment
