"""`MonitorRunner`: runs monitors at intervals and hands their events to a publish callable.

    runner = build_default_runner(publish)          # realtime.publishing.publish
    task = runner.start()                           # inside the server's event loop
    ...
    await runner.stop()

Jobs:
- metrics (`add_metrics`): publishes `system_metrics`; with `system_health=True` also judges
  the "system" component from cpu, memory and disk.
- checks (`add_check`): a callable (sync or async) returning a `ComponentHealth`.
- every `health_check_interval`: `health_check` with every component's latest status.

For each component result the runner publishes `health_update` and `system_status`, and
`health_alert` once when the component gets worse into warning or critical (see
`health.is_escalation`); the last status of each component is kept in a status store,
in the cache when several processes run monitors, so a new leader does not re-alert.

With a `leader_lock`, the runner only runs and publishes while it holds the lease, and
renews it at every tick; the others wait and take over when the leader goes away.

The publish callable is `publish(event_type, data, *, priority=None)`, sync or async (a
sync one runs in Django's sync thread, since `realtime.publishing.publish` writes the event
table). Tests inject a list-appending function.
"""

import asyncio
import contextlib
import inspect
import logging
import time
from dataclasses import dataclass, field

import psutil
from channels.db import database_sync_to_async

from threatlens.monitoring import events
from threatlens.monitoring import health as h
from threatlens.monitoring.checks import run_check

logger = logging.getLogger(__name__)


class MemoryStatusStore:
    """Last status per component, in this process."""

    def __init__(self):
        self._statuses = {}

    async def get(self, component):
        return self._statuses.get(component)

    async def set(self, component, status):
        self._statuses[component] = status


class CacheStatusStore:
    """Last status per component in the Django cache, shared by every runner that may
    become leader."""

    def __init__(self, cache=None, *, prefix="monitors:status", ttl=7 * 86400):
        if cache is None:
            from django.core.cache import cache as default_cache

            cache = default_cache
        self.cache, self.prefix, self.ttl = cache, prefix, ttl

    async def get(self, component):
        return await database_sync_to_async(self.cache.get, thread_sensitive=False)(
            f"{self.prefix}:{component}"
        )

    async def set(self, component, status):
        await database_sync_to_async(self.cache.set, thread_sensitive=False)(
            f"{self.prefix}:{component}", status, self.ttl
        )


@dataclass
class _Job:
    name: str
    kind: str  # "metrics" or "check"
    func: object
    interval: float
    next_due: float = 0.0
    runs: int = 0
    failures: int = 0
    options: dict = field(default_factory=dict)


class MonitorRunner:
    """Runs registered monitors at their intervals (see the module docstring).

    `clock` (monotonic seconds) drives scheduling and is injectable for tests;
    `run_once(now)` runs whatever is due at `now` and returns what it published.
    """

    def __init__(
        self,
        publish,
        *,
        leader_lock=None,
        status_store=None,
        clock=time.monotonic,
        tick=1.0,
        check_timeout=5.0,
        health_check_interval=30.0,
    ):
        if leader_lock is not None and leader_lock.ttl <= check_timeout + tick:
            raise ValueError(
                "the leader lease must outlive a tick plus a check timeout "
                f"(ttl {leader_lock.ttl} s <= {check_timeout} s + {tick} s)"
            )
        self._publish_callable = publish
        self.leader_lock = leader_lock
        self.status_store = status_store or MemoryStatusStore()
        self.clock = clock
        self.tick = tick
        self.check_timeout = check_timeout
        self.health_check_interval = health_check_interval
        self.jobs: list[_Job] = []
        self.latest: dict[str, h.ComponentHealth] = {}
        self.is_leader = leader_lock is None
        self.published = 0
        self.publish_failures = 0
        self._started_at = None
        self._next_health_check = 0.0
        self._stopping = None
        self._task = None

    # -- registration ------------------------------------------------------------------------

    def add_metrics(self, collect, *, interval=5.0, system_health=True, thresholds=None):
        """`collect()` returns SystemMetricsEvent data (blocking is fine: it runs in a thread)."""
        self.jobs.append(
            _Job(
                "system_metrics", "metrics", collect, float(interval),
                options={"system_health": system_health, "thresholds": thresholds},
            )
        )  # fmt: skip

    def add_check(self, component, check, *, interval=15.0):
        """`check()` (sync or async) returns a ComponentHealth for `component`."""
        if any(job.name == component for job in self.jobs):
            raise ValueError(f"a monitor named {component!r} is already registered")
        self.jobs.append(_Job(component, "check", check, float(interval)))

    # -- running -----------------------------------------------------------------------------

    def uptime(self, now=None):
        if self._started_at is None:
            return 0.0
        return max(0.0, (now if now is not None else self.clock()) - self._started_at)

    async def run_once(self, now=None):
        """Renew leadership, run the jobs due at `now`, publish; returns the publications
        as (event_type, data, priority) tuples."""
        now = self.clock() if now is None else now
        if self._started_at is None:
            self._started_at = now
        if self.leader_lock is not None:
            leader = await self._acquire()
            if leader != self.is_leader:
                logger.info("monitors: %s leadership", "took" if leader else "lost")
            self.is_leader = leader
            if not leader:
                return []
        due = [job for job in self.jobs if job.next_due <= now]
        for job in due:
            job.next_due = now + job.interval
        outputs = await asyncio.gather(*(self._run_job(job, now) for job in due))
        publications = [item for output in outputs for item in output]
        if self.health_check_interval and now >= self._next_health_check and self.latest:
            self._next_health_check = now + self.health_check_interval
            publications.append(self._health_check(now))
        for event_type, data, priority in publications:
            await self._publish(event_type, data, priority)
        return publications

    async def run(self):
        """Run until `stop()`; releases the leader lease on the way out."""
        self._stopping = self._stopping or asyncio.Event()
        try:
            while not self._stopping.is_set():
                try:
                    await self.run_once()
                except Exception:
                    # Never let one bad round end the monitors for the life of the server.
                    logger.exception("monitor round failed")
                now = self.clock()
                next_due = min((job.next_due for job in self.jobs), default=now + self.tick)
                delay = min(self.tick, max(0.05, next_due - now))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        finally:
            if self.leader_lock is not None and self.is_leader:
                try:
                    await self.leader_lock.arelease()
                except Exception:
                    logger.warning("could not release the monitors' leader lease")
                self.is_leader = False

    def start(self):
        """Start `run()` as a task of the running loop and return it."""
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self.run(), name="monitor-runner")
        return self._task

    async def stop(self):
        if self._stopping is not None:
            self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    # -- internals -----------------------------------------------------------------------------

    async def _acquire(self):
        try:
            return await self.leader_lock.aacquire()
        except Exception:
            # The cache is down: we cannot know who leads, so publish nothing rather than
            # risk every instance publishing; the cache check reports the outage.
            logger.warning("monitors: leader lease unavailable", exc_info=True)
            return False

    async def _run_job(self, job, now):
        job.runs += 1
        if job.kind == "metrics":
            try:
                data = await asyncio.wait_for(
                    database_sync_to_async(job.func, thread_sensitive=False)(), self.check_timeout
                )
            except Exception:
                job.failures += 1
                logger.exception("collecting system metrics failed")
                return []
            publications = [("system_metrics", data, None)]
            if job.options["system_health"]:
                result = h.system_health(data, job.options["thresholds"])
                result.uptime = time.time() - psutil.boot_time()
                publications += await self._component_result(result, now)
            return publications
        result = await run_check(job.name, job.func, timeout=self.check_timeout)
        if result.status in h.UNHEALTHY:
            job.failures += 1
        return await self._component_result(result, now)

    async def _component_result(self, result, now):
        self.latest[result.component] = result
        previous = await self.status_store.get(result.component)
        await self.status_store.set(result.component, result.status)
        unhealthy = result.status in h.UNHEALTHY
        publications = [
            ("health_update", events.health_update_data(result), 7 if unhealthy else None),
            (
                "system_status",
                events.system_status_data(result, uptime=self.uptime(now)),
                8 if result.status == h.CRITICAL else None,
            ),
        ]
        if h.is_escalation(previous, result.status):
            priority = 9 if result.status == h.CRITICAL else 8
            publications.append(
                ("health_alert", events.health_alert_data(result, previous), priority)
            )
        return publications

    def _health_check(self, now):
        monitors = {
            "status": h.HEALTHY,
            "uptime": round(self.uptime(now), 1),
            "jobs": len(self.jobs),
            "runs": sum(job.runs for job in self.jobs),
            "failures": sum(job.failures for job in self.jobs),
            "published": self.published,
        }
        data = events.health_check_data(self.latest, extra={"monitors": monitors})
        priority = 8 if data["overall_status"] == h.CRITICAL else None
        return ("health_check", data, priority)

    async def _publish(self, event_type, data, priority):
        try:
            if inspect.iscoroutinefunction(self._publish_callable):
                await self._publish_callable(event_type, data, priority=priority)
            else:
                await database_sync_to_async(self._publish_callable, thread_sensitive=True)(
                    event_type, data, priority=priority
                )
            self.published += 1
        except Exception:
            self.publish_failures += 1
            logger.exception("publishing %s failed", event_type)


_monitor_providers = []


def register_monitors(provider):
    """Let an app add checks to every runner built by `build_default_runner`:
    `provider()` returns {component: (check, interval in seconds or None)} and is called
    when a runner is built, so it may read settings then. Apps call this in `ready()`;
    registering the same provider twice adds it once."""
    if provider not in _monitor_providers:
        _monitor_providers.append(provider)


def build_default_runner(publish, *, config=None):
    """The monitors ThreatLens runs: host metrics (and the "system" component), database,
    cache and channel layer checks, the checks apps registered (`register_monitors`),
    health_check; leader lease and statuses in the cache.

    `config` (default: `settings.MONITORS`, all keys optional): METRICS_INTERVAL (5 s),
    CHECK_INTERVAL (15 s), HEALTH_CHECK_INTERVAL (30 s), CHECK_TIMEOUT (5 s), TICK (1 s),
    LEADER_TTL (20 s), DISK_PATH ("/"), SYSTEM_THRESHOLDS ({"cpu": (warn, crit), ...}).
    """
    from functools import partial

    from threatlens.monitoring.checks import default_checks
    from threatlens.monitoring.leader import CacheLeaderLock
    from threatlens.monitoring.metrics import collect_system_metrics

    if config is None:
        from django.conf import settings

        config = getattr(settings, "MONITORS", {})
    runner = MonitorRunner(
        publish,
        leader_lock=CacheLeaderLock(ttl=config.get("LEADER_TTL", 20)),
        status_store=CacheStatusStore(),
        tick=config.get("TICK", 1.0),
        check_timeout=config.get("CHECK_TIMEOUT", 5.0),
        health_check_interval=config.get("HEALTH_CHECK_INTERVAL", 30.0),
    )
    runner.add_metrics(
        partial(collect_system_metrics, disk_path=config.get("DISK_PATH", "/")),
        interval=config.get("METRICS_INTERVAL", 5.0),
        thresholds=config.get("SYSTEM_THRESHOLDS"),
    )
    for component, check in default_checks().items():
        runner.add_check(component, check, interval=config.get("CHECK_INTERVAL", 15.0))
    for provider in _monitor_providers:
        for component, (check, interval) in provider().items():
            runner.add_check(
                component, check, interval=interval or config.get("CHECK_INTERVAL", 15.0)
            )
    return runner
