"""The DNS monitors in the monitor runner the server runs in-process (embedded default)."""

import pytest

from dns.models import Forwarder, ThreatFeed
from tests.dns.helpers import events
from threatlens.monitoring.runner import build_default_runner
from threatlens.writeguard import service_writes

from .test_forwarders import Responder

pytestmark = pytest.mark.django_db(transaction=True)


class Published(list):
    def __call__(self, event_type, data, *, priority=None):
        self.append((event_type, data, priority))

    def health(self, component):
        return [d for kind, d, _ in self if kind == "health_update" and d["component"] == component]


@pytest.fixture
def responder():
    server = Responder()
    yield server
    server.close()


@pytest.fixture
async def runner(settings):
    settings.DNS = {
        "FORWARDER_TIMEOUT": 0.3,
        "FORWARDER_CHECK_INTERVAL": 60,
        "FEED_CHECK_INTERVAL": 60,
        "FEED_TIMEOUT": 1.0,
    }
    published = Published()
    built = build_default_runner(published, config={"LEADER_TTL": 20})
    built.published_events = published
    yield built
    for job in built.jobs:
        monitor = getattr(job.func, "__self__", None)
        if monitor is not None and hasattr(monitor, "rounds"):
            monitor.rounds.wait(5)
    await built.leader_lock.arelease()


async def round_of(runner, component, now):
    """Run the runner at `now`, then wait for the round the component's check started."""
    await runner.run_once(now=now)
    (job,) = [job for job in runner.jobs if job.name == component]
    assert job.func.__self__.rounds.wait(5)


async def test_a_forwarder_going_down_and_up_is_seen_by_the_in_process_monitor(runner, responder):
    with service_writes():
        await Forwarder.objects.acreate(address="127.0.0.1", port=responder.port, name="lab")
    await round_of(runner, "dns_forwarders", 0)
    responder.mode = "silent"
    await round_of(runner, "dns_forwarders", 61)
    responder.mode = "answer"
    await round_of(runner, "dns_forwarders", 122)
    await round_of(runner, "dns_forwarders", 150)  # not due: no new probe
    changes = [
        (e.data["old_status"], e.data["new_status"])
        for e in await sync(events, "forwarder_status_change")
    ]
    assert changes == [("unknown", "healthy"), ("healthy", "critical"), ("critical", "healthy")]
    assert len(responder.queries) == 3
    statuses = [d["status"] for d in runner.published_events.health("dns_forwarders")]
    assert statuses == ["healthy", "critical", "healthy"]


async def test_failing_feed_downloads_make_the_threat_feeds_component_a_warning(runner):
    with service_writes():
        await ThreatFeed.objects.acreate(name="gone", url="http://127.0.0.1:1/feed.txt")
    await round_of(runner, "threat_feeds", 0)
    feed = await ThreatFeed.objects.aget(name="gone")
    assert "cannot download" in feed.last_error and feed.last_fetch is not None
    await round_of(runner, "threat_feeds", 61)
    last = runner.published_events.health("threat_feeds")[-1]
    assert last["status"] == "warning" and "gone: cannot download" in last["message"]


async def sync(function, *args):
    from asgiref.sync import sync_to_async

    return await sync_to_async(function)(*args)


def test_system_metrics_count_the_zones_through_the_provider_the_dns_app_registers(
    make_zone, make_record
):
    from threatlens.monitoring.metrics import collect_system_metrics

    zone = make_zone()
    make_record(zone)
    make_record(zone, name="mail")
    make_zone(is_active=False)
    dns = collect_system_metrics()["metrics"]["dns"]
    assert (dns["active_zones"], dns["total_records"]) == (1, 2)
