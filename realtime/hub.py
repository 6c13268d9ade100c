"""The per-process hub: receives each event once and fans it out to local connections.

Every server process runs one hub (one per event loop), made of parts with one job each:

- `ConnectionRegistry` (`realtime.registry`): the live connections, by type and user;
- the sources (`realtime.sources`): `LayerListener` receives from the channel layer,
  `EventTablePoller` tails the event table for what the layer did not bring;
- `FanOut` (`realtime.fanout`): each event id once, offered to the subscribed connections;
- `ControlHandler` (`realtime.control`): control messages (recheck, disconnect, logout,
  `/ws/info` requests);
- the housekeeping (`realtime.housekeeping`): heartbeat, client pings, token expiry,
  stalled sockets, the periodic access check;
- `HubMetrics` (`realtime.metrics`): counters, latency, the process summary.

The `Hub` builds them, hands each what it needs, starts and stops their loops, and is
what the rest of the process talks to (consumers, monitoring, the SIGTERM handler).
README "How an event travels" has the path of one event.
"""

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor

from django.db import connections

from realtime import shutdown, transport
from realtime.control import ControlHandler
from realtime.fanout import FanOut
from realtime.housekeeping import AccessCheck, ClientPings, ExpirySweep, Heartbeat
from realtime.metrics import HubMetrics
from realtime.registry import ConnectionRegistry
from realtime.sources import EventTablePoller, LayerListener
from realtime.store import make_store
from realtime.transport import ORIGIN

LAYER_READY_TIMEOUT = 5  # seconds `start()` waits for the layer's first answer
STOP_TIMEOUT = 2


class HubDatabase:
    """The hub's own database work (reads of the event table, access checks) runs in one
    thread of its own, so it never queues behind request work; its database connection
    is kept there, and closed by `close()`."""

    def __init__(self):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-db")

    async def run(self, function, *args):
        """Run sync database code in the hub's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def close(self):
        with contextlib.suppress(Exception):
            await self.run(connections.close_all)
        self._executor.shutdown(wait=False)


class Hub:
    """Local connections of one process, and the parts that feed them."""

    def __init__(self):
        self.layer = transport.shared_layer()
        self.store = make_store()
        self.db = HubDatabase()
        self.registry = ConnectionRegistry()
        self.connections = self.registry.connections
        self.metrics = HubMetrics(self.connections, self.store)
        self.counters = self.metrics.counters
        self.started_at = self.metrics.started_at
        self.fan_out = FanOut(self.registry.by_type, self.counters)
        self.listener = LayerListener(self.layer, self.dispatch)
        self.poller = EventTablePoller(
            self.db.run, self.fan_out.arrive, self.fan_out.seen, self.counters
        )
        self.access_check = AccessCheck(self.connections, self.counters, self.db.run)
        self.control = ControlHandler(
            connections_of=self.registry.connections_of,
            end_session=self.access_check.end_session,
            report_connections=self.metrics.report_connections,
        )
        # Everything that runs a loop of its own while the hub runs (`loops()`).
        self._parts = (
            self.listener,
            self.poller,
            Heartbeat(self.store, self.summary),
            ClientPings(self.connections),
            ExpirySweep(self.connections, self.counters),
            self.access_check,
        )
        self.shutting_down = False
        self._tasks = []
        self._start_lock = asyncio.Lock()

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self):
        """Start receiving (idempotent). Waits until the layer has been tried once."""
        if self._tasks:
            return
        async with self._start_lock:
            if self._tasks:
                return
            self.fan_out.last_event_id = await self.poller.start_position()
            loop = asyncio.get_running_loop()
            transport.register_hub(loop, self)
            shutdown.install(self)
            self._tasks = [
                loop.create_task(coroutine, name=name)
                for part in self._parts
                for name, coroutine in part.loops().items()
            ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LAYER_READY_TIMEOUT):
                await self.listener.ready.wait()

    async def stop(self):
        """Stop receiving and close the books (bounded: a stuck layer call is abandoned)."""
        transport.unregister_hub(asyncio.get_running_loop())
        await self.listener.wake()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
        self._tasks = []
        for connection in list(self.connections.values()):
            connection.stop()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STOP_TIMEOUT):
                await self.store.forget_process(ORIGIN)
        await self.db.close()

    def dispatch(self, message):
        """Handle one message from the layer or the event table (never awaits)."""
        kind = message.get("type")
        if kind == "hub.event":
            self.fan_out.arrive(message)
        elif kind == "hub.control":
            self.control.handle(message)
        elif kind == "hub.ping":
            self.listener.answered(message)

    # --- connections ----------------------------------------------------------------------

    def attach(self, connection):
        connection.latency_observer = self.metrics.observe_latency
        self.registry.add(connection)

    def detach(self, connection):
        if self.registry.remove(connection):
            self.metrics.count_closed(connection)
        connection.stop()

    def set_subscriptions(self, connection, subscriptions):
        """Replace a connection's subscriptions (already checked against what it may see)."""
        self.registry.set_subscriptions(connection, subscriptions)

    # --- state, for consumers, monitoring and health checks ---------------------------------

    @property
    def layer_healthy(self):
        """Whether the channel layer works for this process (None: not tried yet)."""
        return self.listener.healthy

    @property
    def channel_name(self):
        return self.listener.channel_name

    @property
    def last_event_id(self):
        return self.fan_out.last_event_id

    async def ping_layer(self, timeout):
        """A round trip through the channel layer to this hub (raises on failure)."""
        await self.listener.ping(timeout)

    def summary(self):
        """This process at a glance: what every process's heartbeat shares, `/metrics`."""
        return self.metrics.summary(self.listener.healthy)

    def connection_stats(self):
        """Every local connection, as `/ws/info` lists them."""
        return self.metrics.connection_stats()


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
