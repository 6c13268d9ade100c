"""Health of the components the server depends on: database, channel layer, cache.

Each check really uses its component (a query, a message round trip through the configured
channel layer, a cache write and read) within a short timeout, so a Redis that is down shows
as down. `GET /healthz` answers the report: 200 when everything is healthy, 503 otherwise.
It needs no login and holds no user data.
"""

import asyncio
import time
import uuid

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from realtime.hub import existing_hub

HEALTHY = "healthy"
DEGRADED = "degraded"
DOWN = "down"

# Seconds a check may take before its component counts as down.
CHECK_TIMEOUT = 3.0


def _result(started, error=None):
    result = {
        "status": DOWN if error else HEALTHY,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    if error:
        result["error"] = error
    return result


def _describe(exc):
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def check_database():
    """A `SELECT 1` on the default database."""
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return _result(started, _describe(exc))
    return _result(started)


async def check_channel_layer(timeout=CHECK_TIMEOUT):
    """A message sent to a new channel of the configured layer and received back."""
    started = time.perf_counter()
    hub = existing_hub()
    if hub is not None and hub.layer is not None and hub.channel_name is not None:
        # This process's hub is receiving: a second receiver on the same layer would wait
        # behind it, so the round trip goes through the hub's own receive loop instead.
        try:
            await hub.ping_layer(timeout)
        except TimeoutError:
            return _result(started, f"no answer within {timeout:g} s")
        except Exception as exc:
            return _result(started, _describe(exc))
        if hub.layer_healthy is False:
            # Redis answers again, but the hub has not yet re-joined the event groups it
            # lost with Redis: events would still come only through the event table.
            return _result(started, "the hub is re-joining its event groups")
        return _result(started)
    layer = get_channel_layer()
    if layer is None:
        return _result(started, "no channel layer is configured")
    nonce = uuid.uuid4().hex

    async def round_trip():
        channel = await layer.new_channel("health")
        await layer.send(channel, {"type": "health.ping", "nonce": nonce})
        return await layer.receive(channel)

    try:
        message = await asyncio.wait_for(round_trip(), timeout)
    except TimeoutError:
        return _result(started, f"no answer within {timeout:g} s")
    except Exception as exc:
        return _result(started, _describe(exc))
    if message.get("nonce") != nonce:
        return _result(started, "received another message than the one sent")
    return _result(started)


def check_cache():
    """A value written to the default cache and read back."""
    started = time.perf_counter()
    key = f"health:{uuid.uuid4().hex}"
    try:
        cache.set(key, key, 10)
        value = cache.get(key)
        cache.delete(key)
    except Exception as exc:
        return _result(started, _describe(exc))
    if value != key:
        return _result(started, "the value written was not read back")
    return _result(started)


async def _in_thread(check, timeout=CHECK_TIMEOUT):
    """Run a sync check in a worker thread of its own, within `timeout`.

    Not the shared sync thread (thread_sensitive=False): a stuck database must not hold the
    thread every other sync view of this process runs in.
    """

    def run():
        try:
            return check()
        finally:
            # Worker threads keep their own database connection; do not leave it open.
            connection.close()

    started = time.perf_counter()
    try:
        return await asyncio.wait_for(sync_to_async(run, thread_sensitive=False)(), timeout)
    except TimeoutError:
        return _result(started, f"no answer within {timeout:g} s")


async def health_report():
    """All checks at once: {"status", "components": {name: check result}, "timestamp"}.

    "down" when the database is down (nothing works without it), "degraded" when another
    component is, else "healthy".
    """
    database, channel_layer, cache_result = await asyncio.gather(
        _in_thread(check_database), check_channel_layer(), _in_thread(check_cache)
    )
    components = {"database": database, "channel_layer": channel_layer, "cache": cache_result}
    if database["status"] == DOWN:
        status = DOWN
    elif any(c["status"] == DOWN for c in components.values()):
        status = DEGRADED
    else:
        status = HEALTHY
    return {"status": status, "components": components, "timestamp": timezone.now().isoformat()}


def health_report_sync():
    """`health_report` for sync callers (management commands, sync views)."""
    return async_to_sync(health_report)()


@never_cache
@require_safe
async def healthz(request):
    """GET /healthz: the health report; 200 when healthy, 503 when degraded or down."""
    report = await health_report()
    return JsonResponse(report, status=200 if report["status"] == HEALTHY else 503)
