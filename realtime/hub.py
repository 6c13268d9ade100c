"""The per-process hub: receives each event once and fans it out to local connections.

Every server process runs one hub (one per event loop). The hub is the only member of
the channel-layer groups (one per event type), so the layer carries an event once per
process instead of once per client, and the payload is encoded once per envelope
(DESIGN.md "The path of one event").

A second source covers what the layer cannot: the hub tails the event table, so events
published by another process without a shared layer (a `manage.py` command in the
embedded default), or lost to a layer outage, still reach live clients. Each event id is
delivered at most once per process, whichever source brings it first.
"""

import asyncio
import bisect
import contextlib
import json
import logging
import os
import time
import uuid
from collections import OrderedDict, defaultdict
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connections

from realtime import catalogue, envelopes, groups, shutdown, transport
from realtime.catalogue import Audience
from realtime.control import ControlHandler
from realtime.housekeeping import AccessCheck, ExpirySweep
from realtime.store import make_store
from realtime.transport import ORIGIN, layer_message

logger = logging.getLogger(__name__)

SEEN_LIMIT = 50_000  # event ids remembered for de-duplication between the two sources
POLL_SLACK = 100  # ids re-read below the high-water mark: ids commit out of order
POLL_BATCH = 5000  # ids read from the event table at a time
GROUP_REFRESH_INTERVAL = 60  # re-join groups: they expire, and vanish if Redis restarts
LAYER_CHECK_INTERVAL = 5  # seconds between round trips through the layer
LAYER_RETRY_INTERVAL = 0.5  # ... while it is unavailable: delivery resumes soon after
LAYER_CHECK_TIMEOUT = 3
HEARTBEAT_INTERVAL = 5
PING_SLICE = 500  # sockets pinged in one go
PASS_EVENTS = 500  # events fanned out in one pass at most
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class OutgoingEvent:
    """One event as the hub holds it: metadata for the per-connection checks, and its frame
    text, built once per envelope in use (and once more, lazily, without the sensitive
    fields)."""

    __slots__ = (
        "id",
        "entry",
        "priority",
        "category",
        "source",
        "users",
        "groups",
        "object_key",
        "published_at",
        "timestamp",
        "data_json",
        "_frame",
        "_redacted",
        "_flat",
        "_flat_redacted",
    )

    def __init__(self, message, entry):
        self.id = message["id"]
        self.entry = entry
        self.priority = message["priority"]
        self.category = message.get("category") or ""
        self.source = message.get("source") or ""
        users, group_ids = message.get("users"), message.get("groups")
        self.users = frozenset(users) if users else frozenset()
        self.groups = frozenset(group_ids) if group_ids else frozenset()
        self.object_key = message.get("object_key") or ""
        self.published_at = message.get("published_at") or time.time()
        self.timestamp = message["timestamp"]
        self.data_json = message["data"]
        self._frame = None
        self._redacted = None
        self._flat = None
        self._flat_redacted = None

    def frame_for(self, principal, flat=False):
        """The event's frame for `principal` (without the sensitive fields for those who may
        not see them): in its family's envelope, or in the flat one (`flat`)."""
        entry = self.entry
        if entry.sensitive_fields and not principal.has_perm(entry.sensitive_permission):
            if flat:
                if self._flat_redacted is None:
                    self._flat_redacted = self._build(self._redacted_data(), flat=True)
                return self._flat_redacted
            if self._redacted is None:
                self._redacted = self._build(self._redacted_data())
            return self._redacted
        if flat:
            if self._flat is None:
                self._flat = self._build(self.data_json, flat=True)
            return self._flat
        if self._frame is None:
            self._frame = self._build(self.data_json)
        return self._frame

    def replay_frame(self, principal, flat=False):
        data_json = self.data_json
        entry = self.entry
        if entry.sensitive_fields and not principal.has_perm(entry.sensitive_permission):
            data_json = self._redacted_data()
        return self._build(data_json, replayed=True, flat=flat)

    def _build(self, data_json, replayed=False, flat=False):
        build = envelopes.flat_event_frame if flat else envelopes.event_frame
        return build(
            self.entry,
            message_id=self.id,
            data_json=data_json,
            timestamp=self.timestamp,
            priority=self.priority,
            replayed=replayed,
        )

    def _redacted_data(self):
        data = envelopes.decode(self.data_json)
        for field in self.entry.sensitive_fields:
            data.pop(field, None)
        return envelopes.encode(data)


class Hub:
    """Local connections of one process, and the tasks that feed them."""

    def __init__(self):
        self.layer = transport.shared_layer()
        self.store = make_store()
        self.connections = {}
        self.by_type = defaultdict(set)
        self.by_user = defaultdict(set)
        self.channel_name = None
        self.layer_healthy = None
        self.database_healthy = None
        self.started_at = time.time()
        self.shutting_down = False
        self.counters = defaultdict(int)
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self._seen = OrderedDict()
        self._arrivals = []  # event messages waiting for the next fan-out pass
        self._pings = {}
        self.last_event_id = 0
        self._poll_floor = None
        self._tasks = []
        self._start_lock = asyncio.Lock()
        # The hub's own reads of the event table run in one thread of its own, so they never
        # queue behind request work, and its database connection is kept and closed here.
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-db")
        self._layer_ready = asyncio.Event()
        self.expiry = ExpirySweep(self.connections, self.counters)
        self.access_check = AccessCheck(self.connections, self.counters, self.run_db)
        self.control = ControlHandler(
            connections_of=self.connections_of,
            end_session=self.access_check.end_session,
            report_connections=self._report_connections,
        )

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self):
        """Start receiving (idempotent). Waits until the layer has been tried once."""
        if self._tasks:
            return
        async with self._start_lock:
            if self._tasks:
                return
            self._poll_floor = await self._max_event_id()
            self.last_event_id = self._poll_floor
            loop = asyncio.get_running_loop()
            transport.register_hub(loop, self)
            shutdown.install(self)
            if self.layer is None:
                self._set_layer_health(True)  # in-process delivery: nothing to reach
            self._tasks = [
                loop.create_task(self._listen(), name="hub-listen"),
                loop.create_task(self._poll_events(), name="hub-poll"),
                loop.create_task(self._heartbeat(), name="hub-heartbeat"),
                loop.create_task(self._ping_clients(), name="hub-ping"),
                loop.create_task(self.expiry._expire_tokens(), name="hub-token-expiry"),
                loop.create_task(self.access_check._check_access(), name="hub-access-check"),
                loop.create_task(self.expiry._close_stalled(), name="hub-stalled-sockets"),
            ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._layer_ready.wait()

    async def stop(self):
        """Stop receiving and close the books (bounded: a stuck layer call is abandoned)."""
        transport.unregister_hub(asyncio.get_running_loop())
        if self.layer is not None and self.channel_name is not None:
            # channels-redis's receive sits in a blocking pop for up to 5 s and only then
            # notices a cancel: a message to ourselves ends the pop at once.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(0.5):
                    await self.layer.send(self.channel_name, {"type": "hub.wake"})
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        self._tasks = []
        for connection in list(self.connections.values()):
            connection.stop()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self.store.forget_process(ORIGIN)
        with contextlib.suppress(Exception):
            await self.run_db(connections.close_all)
        self._db.shutdown(wait=False)

    async def run_db(self, function, *args):
        """Run sync database code in the hub's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self._db, function, *args)

    # --- connections ----------------------------------------------------------------------

    def attach(self, connection):
        connection.latency_observer = self.observe_latency
        self.connections[connection.connection_id] = connection
        self.by_user[connection.principal.user_id].add(connection)
        self._index(connection, connection.subscriptions)

    def detach(self, connection):
        if self.connections.pop(connection.connection_id, None) is not None:
            # What closed sockets sent and received still counts in `/metrics`' totals.
            self.counters["messages_sent_by_closed"] += connection.messages_sent
            self.counters["messages_received_by_closed"] += connection.messages_received
        self._unindex(connection, connection.subscriptions)
        users = self.by_user.get(connection.principal.user_id)
        if users is not None:
            users.discard(connection)
            if not users:
                del self.by_user[connection.principal.user_id]
        connection.stop()

    def set_subscriptions(self, connection, subscriptions):
        """Replace a connection's subscriptions (already checked against what it may see)."""
        subscriptions = frozenset(subscriptions) & connection.allowed
        self._unindex(connection, connection.subscriptions - subscriptions)
        self._index(connection, subscriptions - connection.subscriptions)
        connection.subscriptions = subscriptions

    def _index(self, connection, event_types):
        if connection.connection_id in self.connections:
            for name in event_types:
                self.by_type[name].add(connection)

    def _unindex(self, connection, event_types):
        for name in event_types:
            members = self.by_type.get(name)
            if members is not None:
                members.discard(connection)
                if not members:
                    del self.by_type[name]

    def connections_of(self, user_id):
        return list(self.by_user.get(user_id, ()))

    # --- fan-out --------------------------------------------------------------------------

    def dispatch(self, message):
        """Handle one message from the layer or the event table (never awaits)."""
        kind = message.get("type")
        if kind == "hub.event":
            # Events that arrive together (a burst through the layer, a read of the table)
            # are fanned out in one pass, which visits each connection once for all of
            # them. The pass runs as soon as the loop is free: after the messages already
            # at hand were received.
            self._arrivals.append(message)
            if len(self._arrivals) == 1:
                asyncio.get_running_loop().call_soon(self._fan_out_arrivals)
        elif kind == "hub.control":
            self.control._control(message)
        elif kind == "hub.ping":
            waiter = self._pings.pop(message.get("nonce"), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(True)

    async def ping_layer(self, timeout):
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

    def _fan_out_arrivals(self):
        arrivals = self._arrivals[:PASS_EVENTS]
        self._arrivals = self._arrivals[PASS_EVENTS:]
        if self._arrivals:  # the rest in a later pass: sockets are read in between
            asyncio.get_running_loop().call_soon(self._fan_out_arrivals)
        events = [event for event in map(self._accept, arrivals) if event is not None]
        if len(events) == 1:
            self._fan_out(events[0])
        elif events:
            self._fan_out_many(events)

    def _accept(self, message):
        """The event a message brings, unless it was seen already or nobody here wants it."""
        event_id = message["id"]
        if event_id in self._seen:
            return None
        self._seen[event_id] = None
        if event_id > self.last_event_id:
            self.last_event_id = event_id
        if len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)
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

    def observe_latency(self, now, events):
        """Events handed to a socket at `now`: counted, and their latency since publishing."""
        self.counters["events_delivered"] += len(events)
        counts = self.latency_counts
        total = 0.0
        for event in events:
            seconds = now - event.published_at
            total += seconds
            counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += total

    # --- sources ---------------------------------------------------------------------------

    async def _listen(self):
        """Receive from the channel layer; survive its outages, re-joining the groups."""
        if self.layer is None:
            return
        delay = 0.2
        while True:
            try:
                if self.channel_name is None:
                    self.channel_name = await self.layer.new_channel("rthub")
                await self._join_groups()
                watcher = asyncio.get_running_loop().create_task(self._watch_layer())
                try:
                    self._set_layer_health(True)
                    delay = 0.2
                    while True:
                        self.dispatch(await self.layer.receive(self.channel_name))
                finally:
                    watcher.cancel()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._set_layer_health(False, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)

    async def _join_groups(self):
        for entry in catalogue.all_types():
            await self.layer.group_add(groups.event_group(entry.name), self.channel_name)
        await self.layer.group_add(groups.CONTROL_GROUP, self.channel_name)

    async def _watch_layer(self):
        """The layer's health is a round trip through it, now and then (a Redis pub/sub
        receive does not fail while Redis is away, it just gets nothing). The groups are
        joined again on the way: they vanish when Redis restarts."""
        loop = asyncio.get_running_loop()
        joined_at = loop.time()
        while True:
            healthy = self.layer_healthy is not False
            await asyncio.sleep(LAYER_CHECK_INTERVAL if healthy else LAYER_RETRY_INTERVAL)
            try:
                await self.ping_layer(LAYER_CHECK_TIMEOUT)
                if not self.layer_healthy or loop.time() - joined_at >= GROUP_REFRESH_INTERVAL:
                    await self._join_groups()
                    joined_at = loop.time()
                self._set_layer_health(True)
            except Exception as exc:
                self._set_layer_health(False, exc)

    def _set_layer_health(self, healthy, error=None):
        if healthy != self.layer_healthy:
            if healthy:
                logger.info("hub %s receiving from the channel layer", ORIGIN)
            else:
                logger.warning("channel layer unavailable to hub %s: %s", ORIGIN, error)
        self.layer_healthy = healthy
        self._layer_ready.set()

    async def _poll_events(self):
        interval = settings.REALTIME["EVENT_POLL_INTERVAL"]
        if settings.REDIS_URL:
            interval = max(interval, 1.0)  # a safety net only: the layer is shared
        while True:
            await asyncio.sleep(interval)
            try:
                # Only membership tests on `_seen` in that thread: atomic under the GIL, so
                # no copy of up to SEEN_LIMIT ids twice a second.
                messages, top = await self.run_db(_events_after, self._poll_floor, self._seen)
                self.database_healthy = True
            except Exception as exc:
                if self.database_healthy is not False:
                    logger.warning("hub cannot read the event table: %s", exc)
                self.database_healthy = False
                continue
            for message in messages:
                self.dispatch(message)
                self.counters["events_from_table"] += 1
            # Everything read up to `top` has now been delivered, from here or the layer:
            # the next read starts just below it, whichever source brought the events.
            self._poll_floor = max(self._poll_floor, top - POLL_SLACK)

    async def _max_event_id(self):
        try:
            return await self.run_db(_max_event_id)
        except Exception:
            return 0

    async def _heartbeat(self):
        while True:
            try:
                await self.store.heartbeat(ORIGIN, self.summary())
            except Exception as exc:
                logger.debug("heartbeat failed: %s", exc)
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def _ping_clients(self):
        interval = settings.REALTIME["PING_INTERVAL"]
        while True:
            await asyncio.sleep(interval)
            frame = envelopes.encode({"type": "ping", "timestamp": envelopes.now_iso()})
            connections = list(self.connections.values())
            for start in range(0, len(connections), PING_SLICE):
                for connection in connections[start : start + PING_SLICE]:
                    connection.ping(frame)
                await asyncio.sleep(0)  # events go out between the slices

    # --- monitoring ------------------------------------------------------------------------

    def summary(self):
        """This process at a glance: what every process's heartbeat shares, `/metrics`."""
        connections = self.connections.values()
        return {
            "origin": ORIGIN,
            "pid": os.getpid(),
            "started_at": envelopes.iso_timestamp(self.started_at),
            "layer_healthy": self.layer_healthy,
            "connections": len(self.connections),
            "queued_messages": sum(c.queue_depth for c in connections),
            "events_dropped": sum(c.dropped for c in connections),
            "messages_sent": self.counters["messages_sent_by_closed"]
            + sum(c.messages_sent for c in connections),
            "messages_received": self.counters["messages_received_by_closed"]
            + sum(c.messages_received for c in connections),
            "counters": dict(self.counters),
        }

    def connection_stats(self):
        """Every local connection, as `/ws/info` lists them."""
        return _connection_stats(self.connections.values())

    async def _report_connections(self, request_id):
        """Answer a `/ws/info` request of another process with this one's connections.
        Gathered and encoded in a thread: thousands of sockets take milliseconds, and the
        loop keeps delivering meanwhile. Only asked for, never sent on a timer."""
        connections = list(self.connections.values())
        try:
            encoded = await asyncio.to_thread(_encoded_stats, connections)
            await self.store.put_report(request_id, ORIGIN, encoded)
        except Exception as exc:
            logger.warning("could not report connections for /ws/info: %s", exc)


def _priority(event):
    return event.priority


def _connection_stats(connections):
    return [connection.stats() for connection in connections]


def _encoded_stats(connections):
    return json.dumps(_connection_stats(connections))


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


_hubs = {}


def get_hub():
    """The hub of the running event loop, created on first use."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        for old_loop in [old for old in _hubs if old.is_closed()]:
            del _hubs[old_loop]
        hub = _hubs[loop] = Hub()
    return hub


def existing_hub():
    """The running loop's hub if one was started, else None (sync-safe)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return _hubs.get(loop)
