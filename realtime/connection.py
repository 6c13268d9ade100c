"""One live socket as the hub holds it: what it wants, what it may see, and its delivery.

The hub's fan-out offers each event to each subscribed connection with `offer()`: a few
comparisons on metadata, then `push` onto its outbound queue (`realtime.outbound`), which
writes it at once while the socket is idle (`realtime.writer`). README "How an event
travels" has the whole path.
"""

import time

from realtime import access, envelopes
from realtime.catalogue import Audience
from realtime.outbound import OutboundQueue

NOT_IN_AUDIENCE = "audience"
FILTERED = "filter"


class Connection(OutboundQueue):
    """Delivery state of one socket: who it is (`principal`), what it may receive
    (`allowed`) and wants (`subscriptions`, `filter`), and its counters. Lives in the hub
    of its process; `owner` is the consumer that serves the socket.

    Three layers with one job each, in one object: `SocketWriter` writes frames, the
    `OutboundQueue` above it queues and batches events, and this class chooses the events.
    Each layer keeps its own state (`__slots__`) and calls only the layer below it (but
    for the writer's `_schedule` hook). One object, not three: the fan-out reaches
    thousands of these per event, and one more lookup or call per socket would show.
    Thousands live in one process, hence the slots and the lazily made queues.
    """

    __slots__ = (
        "client_id",
        "connected_at",
        "last_activity",
        "allowed",
        "subscriptions",
        "filter",
        "filtered",
        "messages_received",
        "owner",
    )

    def __init__(
        self,
        *,
        send,
        connection_id,
        client_id,
        principal,
        capacity,
        batch_window,
        on_overflow,
        debug=False,
        flat=False,
        socket=None,
    ):
        super().__init__(
            send=send,
            socket=socket,
            connection_id=connection_id,
            principal=principal,
            flat=flat,
            batch_window=batch_window,
            capacity=capacity,
            on_overflow=on_overflow,
            debug=debug,
        )
        self.client_id = client_id
        self.connected_at = time.time()
        self.last_activity = self.connected_at
        self.allowed = frozenset()
        self.subscriptions = frozenset()
        self.filter = None
        self.filtered = 0
        self.messages_received = 0
        self.owner = None

    def offer(self, event):
        """Deliver or queue `event` if this connection should get it. Called by the hub's
        fan-out for connections subscribed to the event type; never awaits."""
        if self._accepts(event):
            self.push(event)

    def offer_many(self, events, shared_frames=None):
        """`offer` for several events that arrived together (in priority order), of which
        this connection may be subscribed to some."""
        subscriptions = self.subscriptions
        accepted = [
            event for event in events if event.entry.name in subscriptions and self._accepts(event)
        ]
        if accepted:
            self.push_many(accepted, shared_frames)

    def _accepts(self, event):
        refusal = self._refusal(event)
        if refusal == FILTERED:
            self.filtered += 1
            if self.debug:
                self.send_debug("filtered", event, "the connection's filter excludes it")
        return refusal is None

    def wants(self, event):
        """Whether this connection would receive `event` live (replay uses the same test)."""
        return event.entry.name in self.subscriptions and self._refusal(event) is None

    def _refusal(self, event):
        entry = event.entry
        if entry.audience is not Audience.EVERYONE and not access.in_audience(
            self.principal, entry, event.users, event.groups
        ):
            return NOT_IN_AUDIENCE
        if self.filter is not None and not self.filter.matches(
            entry.name, event.priority, event.category, event.source
        ):
            return FILTERED
        return None

    def stats(self):
        return {
            "connection_id": self.connection_id,
            "client_id": self.client_id,
            "user": self.principal.username,
            "user_id": self.principal.user_id,
            "connected_at": envelopes.iso_timestamp(self.connected_at),
            "last_activity": envelopes.iso_timestamp(self.last_activity),
            "messages_sent": self.messages_sent,
            "messages_received": self.messages_received,
            "events_sent": self.events_sent,
            "events_dropped": self.dropped,
            "events_filtered": self.filtered,
            "queue_depth": self.queue_depth,
            "subscriptions": sorted(self.subscriptions),
        }
