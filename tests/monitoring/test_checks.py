"""Health checks of the database, cache and channel layer, up and down."""

import asyncio

import pytest
from django.test import override_settings

from threatlens.monitoring.checks import (
    check_cache,
    check_channel_layer,
    check_database,
    check_now,
    run_check,
    run_checks,
)
from threatlens.monitoring.health import ComponentHealth

NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


@pytest.mark.django_db
def test_database_check_is_healthy_with_a_response_time():
    result = check_database()
    assert (result.component, result.status) == ("database", "healthy")
    assert result.metrics["response_time"] >= 0


def test_database_check_reports_an_unknown_database_as_critical():
    result = check_database(using="missing")
    assert result.status == "critical" and "database unavailable" in result.message


def test_cache_check_is_healthy():
    result = check_cache()
    assert (result.component, result.status) == ("cache", "healthy")


def test_cache_check_reports_an_unreachable_cache_as_critical():
    broken = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": NOWHERE,
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
    with override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "broken": broken,
        }
    ):
        result = check_cache("broken")
    assert result.status == "critical" and "cache unavailable" in result.message


async def test_channel_layer_check_is_healthy():
    result = await check_channel_layer()
    assert (result.component, result.status) == ("channel_layer", "healthy")


async def test_channel_layer_check_reports_an_unreachable_layer_as_critical():
    broken = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [NOWHERE]},
        }
    }
    with override_settings(CHANNEL_LAYERS=broken):
        result = await check_channel_layer(timeout=1)
    assert result.status == "critical" and "channel layer unavailable" in result.message


async def test_a_check_that_hangs_is_critical_after_the_timeout():
    async def hangs():
        await asyncio.Event().wait()  # never set

    result = await run_check("forwarder", hangs, timeout=0.05)
    assert result.status == "critical" and "timed out" in result.message


async def test_a_check_that_crashes_is_critical_and_says_why():
    def crashes():
        raise ConnectionResetError("peer went away")

    result = await run_check("bind9", crashes, timeout=1)
    assert result.component == "bind9" and result.status == "critical"
    assert "ConnectionResetError: peer went away" in result.message


async def test_run_checks_runs_them_together():
    # Each check finishes only once all three have started: run one after the other, the
    # first would wait until its timeout and be critical.
    started = []
    everyone_started = asyncio.Event()

    async def waits_for_the_others():
        started.append(True)
        if len(started) == 3:
            everyone_started.set()
        await everyone_started.wait()
        return ComponentHealth("a", "healthy")

    checks = dict.fromkeys("abc", waits_for_the_others)
    results = await run_checks(checks, timeout=5)
    assert {name: r.status for name, r in results.items()} == dict.fromkeys("abc", "healthy")


@pytest.mark.django_db(transaction=True)
def test_check_now_gives_overall_status_and_components():
    overall, results = check_now()
    assert overall == "healthy"
    assert set(results) == {"database", "cache", "channel_layer"}
