"""The health checks of the services the server depends on: database, cache, channel layer.

The one set of checks and the one vocabulary (`health.STATUSES`: healthy, warning,
critical, unknown) behind every health answer: `GET /healthz` and `/realtime/status`
(`threatlens.health`), `manage.py healthcheck`, the monitors' `health_update`,
`system_status` and `health_check` events, and the console (which shows the last two).

Each check really uses its component (a query, a cache write and read, a message round
trip through the channel layer), returns a `ComponentHealth` and never raises for an
outage (an outage IS the result). `run_checks` runs several at once with a timeout;
`check_now` is the synchronous entry point.
"""

import asyncio
import inspect
import time
import uuid

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from threatlens.monitoring.health import (
    CRITICAL,
    HEALTHY,
    UNKNOWN,
    WARNING,
    ComponentHealth,
    overall_status,
)

# Response times (ms) above which a component that answers is still a warning.
SLOW_MS = {"database": 1000.0, "cache": 500.0, "channel_layer": 1000.0}


def _timed_result(component, started, message_ok=""):
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    slow = elapsed > SLOW_MS.get(component, 1000.0)
    return ComponentHealth(
        component=component,
        status=WARNING if slow else HEALTHY,
        metrics={"response_time": elapsed},
        message=f"slow: {elapsed} ms" if slow else message_ok,
    )


def check_database(using="default"):
    """`SELECT 1` on the database; critical when it fails."""
    from django.db import connections

    started = time.perf_counter()
    connection = None
    try:
        connection = connections[using]
        if not connection.in_atomic_block:
            # A connection the server dropped since its last use is replaced, not
            # reported as an outage (what Django does between requests).
            connection.close_if_unusable_or_obsolete()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return ComponentHealth(
            component="database",
            status=CRITICAL,
            metrics={"response_time": round((time.perf_counter() - started) * 1000, 2)},
            message=f"database unavailable: {exc.__class__.__name__}: {exc}",
        )
    finally:
        # The runner calls this from a pool thread: a connection left open there would
        # outlive its use (and hold PostgreSQL sessions). A fresh connection per check
        # also measures what a new request would meet. Never close one inside a
        # transaction of the caller.
        if connection is not None and not connection.in_atomic_block:
            connection.close()
    return _timed_result("database", started)


def check_cache(alias="default"):
    """Write, read back and delete a key; critical when that fails."""
    from django.core.cache import caches

    key = f"monitoring:healthcheck:{uuid.uuid4().hex}"
    started = time.perf_counter()
    try:
        cache = caches[alias]
        cache.set(key, "ok", timeout=30)
        value = cache.get(key)
        cache.delete(key)
    except Exception as exc:
        return ComponentHealth(
            component="cache",
            status=CRITICAL,
            message=f"cache unavailable: {exc.__class__.__name__}: {exc}",
        )
    if value != "ok":
        return ComponentHealth(
            component="cache", status=CRITICAL, message="cache did not return the value written"
        )
    return _timed_result("cache", started)


def _layer_down(started, reason):
    return ComponentHealth(
        component="channel_layer",
        status=CRITICAL,
        metrics={"response_time": round((time.perf_counter() - started) * 1000, 2)},
        message=f"channel layer unavailable: {reason}",
    )


def _reason(exc):
    return "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"


async def check_channel_layer(timeout=2.0):
    """A message through the channel layer and back; critical when it does not come back
    within `timeout` seconds, unknown when no layer is configured."""
    from channels.layers import get_channel_layer

    from realtime.hub import existing_hub

    started = time.perf_counter()
    hub = existing_hub()
    if hub is not None and hub.layer is not None and hub.channel_name is not None:
        # This process's hub is receiving: a second receiver on the same layer would wait
        # behind it, so the round trip goes through the hub's own receive loop instead.
        try:
            await hub.ping_layer(timeout)
        except Exception as exc:
            return _layer_down(started, _reason(exc))
        if hub.layer_healthy is False:
            # The layer answers again, but the hub has not re-joined the event groups it
            # lost: events still come only through the event table.
            return _layer_down(started, "the hub is re-joining its event groups")
        return _timed_result("channel_layer", started)
    layer = get_channel_layer()
    if layer is None:
        return ComponentHealth(
            component="channel_layer", status=UNKNOWN, message="no channel layer configured"
        )
    nonce = uuid.uuid4().hex
    try:
        channel = await layer.new_channel(prefix="healthcheck.")
        await layer.send(channel, {"type": "healthcheck.ping", "nonce": nonce})
        message = await asyncio.wait_for(layer.receive(channel), timeout)
    except Exception as exc:
        return _layer_down(started, _reason(exc))
    if message.get("nonce") != nonce:
        return _layer_down(started, "received another message than the one sent")
    return _timed_result("channel_layer", started)


def default_checks():
    """component name -> check callable (sync or async), for the runner and `check_now`."""
    return {
        "database": check_database,
        "cache": check_cache,
        "channel_layer": check_channel_layer,
    }


async def run_check(component, check, *, timeout):
    """Run one check (sync ones in a worker thread) and turn a timeout or a crash into a
    critical result: a check that cannot say "healthy" in time is not."""
    try:
        if inspect.iscoroutinefunction(check):
            result = await asyncio.wait_for(check(), timeout)
        else:
            # Not thread_sensitive: a hung database connect must not block the thread that
            # publishes and serves ORM work for the rest of the process. The database's
            # variant gives the worker's connection back after (PostgreSQL's pool counts it).
            in_thread = database_sync_to_async(check, thread_sensitive=False)
            result = await asyncio.wait_for(in_thread(), timeout)
    except TimeoutError:
        return ComponentHealth(component, CRITICAL, message=f"check timed out after {timeout} s")
    except Exception as exc:
        return ComponentHealth(
            component, CRITICAL, message=f"check failed: {exc.__class__.__name__}: {exc}"
        )
    if not isinstance(result, ComponentHealth):
        return ComponentHealth(component, UNKNOWN, message="check returned no ComponentHealth")
    if result.component != component:
        result.component = component
    return result


async def run_checks(checks=None, *, timeout=5.0):
    """Run checks concurrently; returns {component: ComponentHealth}."""
    checks = checks if checks is not None else default_checks()
    names = list(checks)
    results = await asyncio.gather(
        *(run_check(name, checks[name], timeout=timeout) for name in names)
    )
    return dict(zip(names, results, strict=True))


def check_now(checks=None, *, timeout=5.0):
    """Synchronous: (overall_status, {component: ComponentHealth}), for `manage.py
    healthcheck` (exit 1 when a component is critical)."""
    results = async_to_sync(run_checks)(checks, timeout=timeout)
    return overall_status(result.status for result in results.values()), results
