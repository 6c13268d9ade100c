"""manage.py run_monitors and manage.py healthcheck."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from realtime.models import Event
from threatlens.monitoring.health import CRITICAL, ComponentHealth

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def embedded(settings):
    settings.REDIS_URL = None
    settings.MONITORS_IN_PROCESS = True


def test_run_monitors_refuses_when_the_server_runs_them_itself(embedded):
    with pytest.raises(CommandError, match="already runs the monitors") as caught:
        run("run_monitors", "--once")
    assert caught.value.returncode == 1
    assert not Event.objects.exists()


def test_run_monitors_once_publishes_system_metrics_and_health(embedded):
    out, _err = run("run_monitors", "--once", "--force")

    types = set(Event.objects.values_list("event_type", flat=True))
    assert {"system_metrics", "health_update", "system_status", "health_check"} <= types
    metrics = Event.objects.get(event_type="system_metrics").data["metrics"]
    assert {"cpu", "memory", "disk", "network"} <= set(metrics)
    components = {e.data["component"] for e in Event.objects.filter(event_type="health_update")}
    assert {"database", "cache", "channel_layer", "system"} <= components
    assert "1 system_metrics" in out


def test_run_monitors_runs_without_force_when_the_server_does_not(settings):
    settings.MONITORS_IN_PROCESS = False
    run("run_monitors", "--once")
    assert Event.objects.filter(event_type="system_metrics").exists()


def test_run_monitors_stands_by_while_another_runner_leads(settings):
    from django.core.cache import cache

    settings.MONITORS_IN_PROCESS = False
    cache.set("monitors:leader", "someone-else", 60)
    out, _err = run("run_monitors", "--once")
    assert "Another monitor runner holds the leader lease" in out
    assert not Event.objects.exists()


def test_healthcheck_prints_each_component_and_exits_zero_when_healthy():
    out, _err = run("healthcheck")

    lines = out.splitlines()
    for component in ("database", "cache", "channel_layer"):
        assert any(line.startswith(component) and "healthy" in line for line in lines)
    assert lines[-1] == "overall: healthy"


def test_healthcheck_exits_non_zero_when_a_component_is_down(monkeypatch):
    def broken_cache():
        return ComponentHealth("cache", CRITICAL, message="cache unavailable: refused")

    monkeypatch.setattr(
        "threatlens.monitoring.checks.default_checks",
        lambda: {"cache": broken_cache, "database": lambda: ComponentHealth("database", "healthy")},
    )
    out = io.StringIO()
    with pytest.raises(CommandError, match="Down: cache") as caught:
        call_command("healthcheck", stdout=out)
    assert caught.value.returncode == 1
    assert "cache unavailable: refused" in out.getvalue()


def test_healthcheck_json():
    out, _err = run("healthcheck", "--json")
    report = json.loads(out)
    assert report["status"] == "healthy"
    assert report["components"]["database"]["status"] == "healthy"
