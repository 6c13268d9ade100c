"""The fan-out: each event, once per process, to the local connections that want it.

Both sources (`realtime.sources`: the channel layer and the event table) hand events to
`FanOut.arrive`. Events that arrive together (a burst through the layer, a read of the
table) go out in one pass, which visits each connection once for all of them. The
per-connection checks and the writing are the connection's (`realtime.connection`);
this loop only picks the connections, and hands them the events without awaiting
(README "How an event travels").
"""

import asyncio
import logging
from collections import OrderedDict

from realtime import catalogue
from realtime.catalogue import Audience
from realtime.outgoing import OutgoingEvent

logger = logging.getLogger(__name__)

SEEN_LIMIT = 50_000  # event ids remembered for de-duplication between the two sources
PASS_EVENTS = 500  # events fanned out in one pass at most


class FanOut:
    """Offers each event id once to the connections subscribed to its type.

    `by_type` is the registry's index ({event type name: connections}), `counters` the
    hub's: both held here, not looked up per event. `seen` (the ids already taken, oldest
    first) is also read by the event-table poller's thread."""

    def __init__(self, by_type, counters):
        self.by_type = by_type
        self.counters = counters
        self.seen = OrderedDict()
        self.last_event_id = 0  # the highest event id taken, whoever wanted it
        self._arrivals = []  # event messages waiting for the next pass

    def arrive(self, message):
        """Take one event message (never awaits). The pass runs as soon as the loop is
        free: after the messages already at hand were received."""
        self._arrivals.append(message)
        if len(self._arrivals) == 1:
            asyncio.get_running_loop().call_soon(self._pass)

    def _pass(self):
        arrivals = self._arrivals[:PASS_EVENTS]
        self._arrivals = self._arrivals[PASS_EVENTS:]
        if self._arrivals:  # the rest in a later pass: sockets are read in between
            asyncio.get_running_loop().call_soon(self._pass)
        events = [event for event in map(self._accept, arrivals) if event is not None]
        if len(events) == 1:
            self._fan_out(events[0])
        elif events:
            self._fan_out_many(events)

    def _accept(self, message):
        """The event a message brings, unless it was seen already or nobody here wants it."""
        event_id = message["id"]
        if event_id in self.seen:
            return None
        self.seen[event_id] = None
        if event_id > self.last_event_id:
            self.last_event_id = event_id
        if len(self.seen) > SEEN_LIMIT:
            self.seen.popitem(last=False)
        try:
            entry = catalogue.get(message["event_type"])
        except catalogue.UnknownEventType:
            logger.warning(
                "dropping event %s of undeclared type %s", event_id, message["event_type"]
            )
            return None
        self.counters["events_received"] += 1
        if not self.by_type.get(entry.name):
            return None
        return OutgoingEvent(message, entry)

    def _fan_out(self, event):
        subscribers = tuple(self.by_type.get(event.entry.name, ()))
        if event.entry.audience is Audience.EVERYONE:
            # The common case: whoever subscribed may see it, only a filter can refuse.
            for connection in subscribers:
                if connection.filter is None:
                    connection.push(event)
                else:
                    connection.offer(event)
        else:
            for connection in subscribers:
                connection.offer(event)

    def _fan_out_many(self, events):
        """Several events in one pass: each connection gets the ones it wants in one go,
        highest priority first. Connections with the same subscriptions and no filter
        share one list of events (and so one `batch` frame) when everyone may see them."""
        events.sort(key=_priority, reverse=True)  # stable: arrival order within a priority
        names = {event.entry.name for event in events}
        candidates = set().union(*(self.by_type.get(name, ()) for name in names))
        everyone = all(event.entry.audience is Audience.EVERYONE for event in events)
        wanted_by = {}  # subscriptions -> the events they get
        shared_frames = {}
        for connection in candidates:
            if everyone and connection.filter is None:
                subscriptions = connection.subscriptions
                wanted = wanted_by.get(subscriptions)
                if wanted is None:
                    wanted = wanted_by[subscriptions] = [
                        event for event in events if event.entry.name in subscriptions
                    ]
                connection.push_many(wanted, shared_frames)
            else:
                connection.offer_many(events, shared_frames)


def _priority(event):
    return event.priority
