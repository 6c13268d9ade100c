"""Where the hub's messages come from: the channel layer, and the event table behind it.

The hub is the only member of the channel-layer groups (one per event type, and the
control group), so the layer carries an event once per process instead of once per
client. The event table covers what the layer cannot: events published by another
process without a shared layer (a `manage.py` command in the embedded default), or lost
to a layer outage, still reach live clients. Each event id is delivered at most once per
process, whichever source brings it first (`realtime.fanout`).
"""

import asyncio
import logging
import uuid

from django.conf import settings
from django.db import close_old_connections

from realtime import catalogue, groups
from realtime.transport import ORIGIN, layer_message
from realtime.wakeup import table_wakeups

logger = logging.getLogger(__name__)

POLL_SLACK = 100  # ids re-read below the high-water mark: ids commit out of order
POLL_BATCH = 5000  # ids read from the event table at a time
GROUP_REFRESH_INTERVAL = 60  # re-join groups: they expire, and vanish if Redis restarts
LAYER_CHECK_INTERVAL = 5  # seconds between round trips through the layer
LAYER_RETRY_INTERVAL = 0.5  # ... while it is unavailable: delivery resumes soon after
LAYER_CHECK_TIMEOUT = 3
WAKE_TIMEOUT = 0.5
POLL_SPACING = 0.02  # seconds between two reads of the event table, however many wake-ups


class LayerListener:
    """Receives the hub's messages from the channel layer (None: in-process delivery, no
    layer to reach) and hands each to `deliver`; survives the layer's outages, joining
    the groups again, and knows whether it works (`healthy`: None until first tried)."""

    def __init__(self, layer, deliver):
        self.layer = layer
        self.deliver = deliver
        self.channel_name = None
        self.healthy = None
        self.ready = asyncio.Event()  # set once the layer has been tried
        self._pings = {}  # nonce -> the future its round trip completes

    def loops(self):
        return {"hub-listen": self._listen()}

    async def ping(self, timeout):
        """A round trip through the channel layer to this hub's own receive loop: the honest
        answer to "does the layer work for this process?". Raises on failure or timeout."""
        if self.channel_name is None:
            raise RuntimeError("the hub has not joined the channel layer")
        nonce = uuid.uuid4().hex
        waiter = self._pings[nonce] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self.layer.send(self.channel_name, {"type": "hub.ping", "nonce": nonce})
                await waiter
        finally:
            self._pings.pop(nonce, None)

    def answered(self, message):
        """A `hub.ping` came back through the layer."""
        waiter = self._pings.pop(message.get("nonce"), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    async def wake(self):
        """End the pending receive now (the hub stops): channels-redis's receive sits in a
        blocking pop for up to 5 s and only then notices a cancel."""
        if self.layer is None or self.channel_name is None:
            return
        try:
            async with asyncio.timeout(WAKE_TIMEOUT):
                await self.layer.send(self.channel_name, {"type": "hub.wake"})
        except Exception as exc:
            logger.debug("could not wake the hub's receive: %s", exc)

    async def _listen(self):
        if self.layer is None:
            self._set_health(True)  # in-process delivery: nothing to reach
            return
        delay = 0.2
        while True:
            try:
                if self.channel_name is None:
                    self.channel_name = await self.layer.new_channel("rthub")
                await self._join_groups()
                watcher = asyncio.get_running_loop().create_task(self._watch())
                try:
                    self._set_health(True)
                    delay = 0.2
                    while True:
                        self.deliver(await self.layer.receive(self.channel_name))
                finally:
                    watcher.cancel()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._set_health(False, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)

    async def _join_groups(self):
        for entry in catalogue.all_types():
            await self.layer.group_add(groups.event_group(entry.name), self.channel_name)
        await self.layer.group_add(groups.CONTROL_GROUP, self.channel_name)

    async def _watch(self):
        """The layer's health is a round trip through it, now and then (a Redis pub/sub
        receive does not fail while Redis is away, it just gets nothing). The groups are
        joined again on the way: they vanish when Redis restarts."""
        loop = asyncio.get_running_loop()
        joined_at = loop.time()
        while True:
            healthy = self.healthy is not False
            await asyncio.sleep(LAYER_CHECK_INTERVAL if healthy else LAYER_RETRY_INTERVAL)
            try:
                await self.ping(LAYER_CHECK_TIMEOUT)
                if not self.healthy or loop.time() - joined_at >= GROUP_REFRESH_INTERVAL:
                    await self._join_groups()
                    joined_at = loop.time()
                self._set_health(True)
            except Exception as exc:
                self._set_health(False, exc)

    def _set_health(self, healthy, error=None):
        if healthy != self.healthy:
            if healthy:
                logger.info("hub %s receiving from the channel layer", ORIGIN)
            else:
                logger.warning("channel layer unavailable to hub %s: %s", ORIGIN, error)
        self.healthy = healthy
        self.ready.set()


class EventTablePoller:
    """Tails the event table and hands `deliver` the events the hub has not `seen` (the
    fan-out's ids, read in the database thread: membership tests only).

    `run_db` runs sync database code in the hub's own thread; `counters` are the hub's."""

    def __init__(self, run_db, deliver, seen, counters):
        self.run_db = run_db
        self.deliver = deliver
        self.seen = seen
        self.counters = counters
        self.healthy = None  # whether the last read worked (None: not read yet)
        self._floor = 0  # the next read starts above this id

    async def start_position(self):
        """Start from the newest stored event (older ones are replay's), and return its id."""
        try:
            self._floor = await self.run_db(_max_event_id)
        except Exception:
            self._floor = 0
        return self._floor

    def loops(self):
        return {"hub-poll": self._poll()}

    async def _poll(self):
        interval = settings.REALTIME["EVENT_POLL_INTERVAL"]
        if settings.REDIS_URL:
            interval = max(interval, 1.0)  # a safety net only: the layer is shared
        while True:
            # A child process's commit wakes it at once (realtime.wakeup); the interval
            # is the floor that delivers whatever else stored events, or a broken channel.
            await table_wakeups.wait(interval)
            # At most one read per POLL_SPACING: the wake-ups meanwhile make one poll.
            await asyncio.sleep(POLL_SPACING)
            try:
                # Only membership tests on `seen` in that thread: atomic under the GIL, so
                # no copy of up to SEEN_LIMIT ids twice a second.
                messages, top = await self.run_db(_events_after, self._floor, self.seen)
                self.healthy = True
            except Exception as exc:
                if self.healthy is not False:
                    logger.warning("hub cannot read the event table: %s", exc)
                self.healthy = False
                continue
            for message in messages:
                self.deliver(message)
                self.counters["events_from_table"] += 1
            # Everything read up to `top` has now been delivered, from here or the layer:
            # the next read starts just below it, whichever source brought the events.
            self._floor = max(self._floor, top - POLL_SLACK)


def _events_after(floor, seen):
    """(messages for stored events above `floor` that the hub has not seen, the highest
    id read) (hub thread)."""
    from realtime.models import Event

    close_old_connections()
    ids = list(
        Event.objects.filter(id__gt=floor).order_by("id").values_list("id", flat=True)[:POLL_BATCH]
    )
    top = ids[-1] if ids else floor
    fresh = [event_id for event_id in ids if event_id not in seen]
    if not fresh:
        return [], top
    events = Event.objects.filter(id__in=fresh).order_by("id")
    return [layer_message(event) for event in events], top


def _max_event_id():
    from django.db.models import Max

    from realtime.models import Event

    close_old_connections()
    return Event.objects.aggregate(top=Max("id"))["top"] or 0
