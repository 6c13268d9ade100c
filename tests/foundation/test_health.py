"""/healthz, `manage.py healthcheck`, the monitors and the console's /realtime/status run
the same checks (`threatlens.monitoring.checks`) and say the same thing in the same words:
healthy, warning, critical, unknown."""

import asyncio
import io
import json

import pytest
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command

from threatlens import health
from threatlens.monitoring import checks
from threatlens.monitoring.health import ComponentHealth
from threatlens.monitoring.runner import MonitorRunner

pytestmark = pytest.mark.django_db

UNREACHABLE_REDIS_LAYER = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # Port 1 on loopback: nothing listens there, the connection is refused at once.
        "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
    }
}


def test_healthz_answers_200_when_everything_is_up(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert set(body["components"]) == {"database", "channel_layer", "cache"}
    for component in body["components"].values():
        assert component["status"] == "healthy"
        assert component["response_time"] >= 0
        assert "message" not in component
    assert body["timestamp"]
    assert response["Cache-Control"].startswith("max-age=0")


def test_healthz_answers_503_when_the_channel_layer_is_down(client, settings):
    settings.CHANNEL_LAYERS = UNREACHABLE_REDIS_LAYER

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "critical"
    layer = body["components"]["channel_layer"]
    assert layer["status"] == "critical"
    assert layer["message"].startswith("channel layer unavailable")
    assert body["components"]["database"]["status"] == "healthy"


def monitor_events():
    """What the monitors publish after one round of the default checks."""
    published = []
    runner = MonitorRunner(lambda kind, data, priority=None: published.append((kind, data)))
    for component, check in checks.default_checks().items():
        runner.add_check(component, check, interval=60)
    async_to_sync(runner.run_once)(now=100.0)
    return published


def test_with_redis_down_healthz_healthcheck_the_monitors_and_the_console_all_say_critical(
    client, settings
):
    settings.CHANNEL_LAYERS = UNREACHABLE_REDIS_LAYER

    healthz = client.get("/healthz").json()
    console = client.get("/realtime/status").json()
    out = io.StringIO()
    with pytest.raises(CommandError, match="Down: channel_layer"):
        call_command("healthcheck", "--json", stdout=out)
    command = json.loads(out.getvalue())
    published = monitor_events()
    updates = {d["component"]: d["status"] for kind, d in published if kind == "health_update"}
    system = {d["component"]: d["status"] for kind, d in published if kind == "system_status"}
    [overall] = [d for kind, d in published if kind == "health_check"]

    for report in (healthz, console, command):
        assert report["status"] == "critical"
        assert {name: c["status"] for name, c in report["components"].items()} == {
            "database": "healthy",
            "cache": "healthy",
            "channel_layer": "critical",
        }
    assert (
        updates
        == system
        == {"database": "healthy", "cache": "healthy", "channel_layer": "critical"}
    )
    assert overall["overall_status"] == "critical"
    assert overall["components"]["channel_layer"]["status"] == "critical"


def test_with_everything_up_they_all_say_healthy(client):
    reports = [client.get("/healthz").json(), client.get("/realtime/status").json()]
    out = io.StringIO()
    call_command("healthcheck", "--json", stdout=out)
    reports.append(json.loads(out.getvalue()))
    assert [report["status"] for report in reports] == ["healthy"] * 3
    published = monitor_events()
    assert {d["status"] for kind, d in published if kind == "health_update"} == {"healthy"}


def test_healthz_needs_no_login_and_shows_no_user_data(client, carol):
    text = client.get("/healthz").content.decode()
    assert "carol" not in text


def test_healthz_refuses_other_methods(client):
    assert client.post("/healthz").status_code == 405


def test_a_slow_component_is_a_warning_and_healthz_stays_200(client, monkeypatch):
    monkeypatch.setitem(checks.SLOW_MS, "cache", -1.0)
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "warning"
    assert response.json()["components"]["cache"]["message"].startswith("slow")


def test_the_report_is_critical_when_the_database_is_down(monkeypatch):
    down = ComponentHealth("database", "critical", message="database unavailable: gone")
    monkeypatch.setattr(checks, "check_database", lambda: down)
    report = health.health_report_sync()
    assert report["status"] == "critical"
    assert report["components"]["database"]["message"] == "database unavailable: gone"


def test_the_report_is_critical_when_the_cache_is_down(monkeypatch):
    from django.core.cache import cache

    def broken(*args, **kwargs):
        raise ConnectionError("Connection refused")

    monkeypatch.setattr(cache, "set", broken)
    report = health.health_report_sync()
    assert report["status"] == "critical"
    assert report["components"]["cache"] == {
        "status": "critical",
        "message": "cache unavailable: ConnectionError: Connection refused",
    }


async def test_a_channel_layer_that_never_answers_is_critical_after_the_timeout(monkeypatch):
    class Silent:
        async def new_channel(self, prefix="specific."):
            return prefix + "x"

        async def send(self, channel, message):
            pass

        async def receive(self, channel):
            await asyncio.Event().wait()  # never set: no answer ever comes

    monkeypatch.setattr("channels.layers.get_channel_layer", lambda: Silent())
    result = await checks.check_channel_layer(timeout=0.05)
    assert result.status == "critical"
    assert result.message == "channel layer unavailable: timed out"


async def test_the_channel_layer_check_is_a_real_round_trip():
    result = await checks.check_channel_layer()
    assert result.status == "healthy"


def test_a_missing_channel_layer_is_unknown(monkeypatch):
    monkeypatch.setattr("channels.layers.get_channel_layer", lambda: None)
    assert async_to_sync(checks.check_channel_layer)().status == "unknown"
