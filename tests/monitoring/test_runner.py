"""MonitorRunner: intervals, health transitions, health_check, the leader lease."""

import pytest

from tests.waiting import until
from threatlens.monitoring.health import ComponentHealth
from threatlens.monitoring.leader import CacheLeaderLock
from threatlens.monitoring.runner import CacheStatusStore, MonitorRunner, build_default_runner

# A synchronous publish callable runs through `database_sync_to_async`, which closes the
# shared sync thread's stale database connections first: database access, whichever test
# left that connection open on this worker.
pytestmark = pytest.mark.django_db


class Published(list):
    """A publish callable that records (event_type, data, priority)."""

    def __call__(self, event_type, data, *, priority=None):
        self.append((event_type, data, priority))

    def of(self, event_type):
        return [data for kind, data, _ in self if kind == event_type]


def scripted(component, *statuses):
    """A check returning the given statuses in turn (the last one repeats)."""
    remaining = list(statuses)

    def check():
        status = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return ComponentHealth(component, status, metrics={"response_time": 1.0})

    return check


def fake_metrics(cpu=12.5):
    return {
        "metrics": {
            "cpu": {"usage_percent": cpu, "load_average": [0.5, 0.4, 0.3]},
            "memory": {"total": 8, "used": 4, "available": 4, "usage_percent": 50.0},
            "disk": {"total": 100, "used": 40, "available": 60, "usage_percent": 40.0},
            "network": {
                "bytes_sent": 1,
                "bytes_received": 2,
                "packets_sent": 3,
                "packets_received": 4,
            },
            "dns": {"queries_per_second": 0.0, "active_zones": 0, "total_records": 0},
        },
        "timestamp": "2025-03-10T14:00:00Z",
    }


def make_runner(published, **options):
    options.setdefault("health_check_interval", 0)
    return MonitorRunner(published, **options)


async def test_each_check_result_publishes_health_update_and_system_status():
    published = Published()
    runner = make_runner(published)
    runner.add_check("database", scripted("database", "healthy"), interval=15)
    await runner.run_once(now=100.0)
    assert [kind for kind, _, _ in published] == ["health_update", "system_status"]
    update, status = published.of("health_update")[0], published.of("system_status")[0]
    assert update["component"] == "database" and update["status"] == "healthy"
    assert update["metrics"] == {"response_time": 1.0}
    assert status == {
        "component": "database", "status": "healthy", "uptime": 0.0,
        "metrics": {"response_time": 1.0},
    }  # fmt: skip


async def test_monitors_run_at_their_intervals():
    published = Published()
    runner = make_runner(published)
    runner.add_check("database", scripted("database", "healthy"), interval=10)
    runner.add_check("cache", scripted("cache", "healthy"), interval=4)
    ran = {}
    for now in range(0, 21):
        published.clear()
        await runner.run_once(now=float(now))
        ran[now] = sorted(data["component"] for data in published.of("health_update"))
    assert [now for now, names in ran.items() if "database" in names] == [0, 10, 20]
    assert [now for now, names in ran.items() if "cache" in names] == [0, 4, 8, 12, 16, 20]
    assert published.of("system_status")[0]["uptime"] == 20.0


async def test_a_component_turning_unhealthy_raises_one_health_alert():
    published = Published()
    runner = make_runner(published)
    statuses = ["healthy", "critical", "critical", "critical", "healthy", "healthy", "critical"]
    runner.add_check("cache", scripted("cache", *statuses), interval=1)
    for now in range(len(statuses)):
        await runner.run_once(now=float(now))
    alerts = [(data, priority) for kind, data, priority in published if kind == "health_alert"]
    assert len(alerts) == 2  # the first outage, and the new one after recovery
    (first, priority), _ = alerts
    assert (first["component"], first["status"], first["previous_status"]) == (
        "cache", "critical", "healthy",
    )  # fmt: skip
    assert priority == 9
    assert len(published.of("health_update")) == len(statuses)


async def test_warning_then_critical_alerts_on_each_escalation_only():
    published = Published()
    runner = make_runner(published)
    runner.add_check(
        "database", scripted("database", "warning", "warning", "critical", "warning"), interval=1
    )
    for now in range(4):
        await runner.run_once(now=float(now))
    alerts = published.of("health_alert")
    assert [(a["previous_status"], a["status"]) for a in alerts] == [
        (None, "warning"),
        ("warning", "critical"),
    ]


async def test_a_crashing_check_is_a_critical_component_not_a_dead_runner():
    published = Published()
    runner = make_runner(published)

    def broken():
        raise OSError("no route to host")

    runner.add_check("forwarder", broken, interval=1)
    await runner.run_once(now=0.0)
    (alert,) = published.of("health_alert")
    assert alert["status"] == "critical" and "no route to host" in alert["message"]


async def test_metrics_publish_system_metrics_and_the_system_component():
    published = Published()
    runner = make_runner(published)
    runner.add_metrics(fake_metrics, interval=5)
    await runner.run_once(now=0.0)
    assert published.of("system_metrics") == [fake_metrics()]
    (system,) = published.of("health_update")
    assert system["component"] == "system" and system["status"] == "healthy"
    assert system["metrics"]["cpu_usage"] == 12.5
    assert published.of("system_status")[0]["uptime"] > 0  # the host's uptime


async def test_hot_cpu_alerts_once_through_the_system_component():
    published = Published()
    runner = make_runner(published)
    readings = iter([10.0, 97.0, 98.0, 99.0])
    runner.add_metrics(lambda: fake_metrics(cpu=next(readings)), interval=1)
    for now in range(4):
        await runner.run_once(now=float(now))
    (alert,) = published.of("health_alert")
    assert alert["component"] == "system" and "cpu at 97.0%" in alert["message"]


async def test_failed_metrics_collection_publishes_nothing_and_is_counted():
    published = Published()
    runner = make_runner(published)

    def broken():
        raise PermissionError("/proc is not readable")

    runner.add_metrics(broken, interval=1)
    assert await runner.run_once(now=0.0) == []
    assert runner.jobs[0].failures == 1


async def test_health_check_reports_every_component_and_the_monitors():
    published = Published()
    runner = make_runner(published, health_check_interval=30)
    runner.add_check("database", scripted("database", "healthy"), interval=10)
    runner.add_check("cache", scripted("cache", "warning"), interval=10)
    for now in (0.0, 10.0, 20.0, 30.0):
        await runner.run_once(now=now)
    checks = published.of("health_check")
    assert len(checks) == 2  # at 0 and at 30
    data = checks[-1]
    assert data["overall_status"] == "warning"
    assert data["components"]["database"] == {"status": "healthy", "response_time": 1.0}
    assert data["components"]["cache"]["status"] == "warning"
    assert data["components"]["monitors"]["jobs"] == 2
    assert set(data) == {"overall_status", "components", "timestamp"}


async def test_an_async_publish_callable_is_awaited():
    received = []

    async def publish(event_type, data, *, priority=None):
        received.append(event_type)

    runner = make_runner(publish)
    runner.add_check("cache", scripted("cache", "healthy"), interval=1)
    await runner.run_once(now=0.0)
    assert received == ["health_update", "system_status"]


async def test_a_failing_publish_is_logged_and_the_round_goes_on(caplog):
    calls = []

    def publish(event_type, data, *, priority=None):
        calls.append(event_type)
        if event_type == "health_update":
            raise RuntimeError("event table locked")

    runner = make_runner(publish)
    runner.add_check("cache", scripted("cache", "healthy"), interval=1)
    await runner.run_once(now=0.0)
    assert calls == ["health_update", "system_status"]
    assert runner.publish_failures == 1 and runner.published == 1
    assert "publishing health_update failed" in caplog.text


def test_a_monitor_name_is_registered_once():
    runner = make_runner(Published())
    runner.add_check("cache", scripted("cache", "healthy"))
    with pytest.raises(ValueError, match="already registered"):
        runner.add_check("cache", scripted("cache", "healthy"))


# -- leader lease ---------------------------------------------------------------------------------


def lease(owner, ttl=20):
    return CacheLeaderLock("test-monitors:leader", ttl=ttl, owner=owner)


async def test_of_two_runners_only_the_leader_publishes():
    first, second = Published(), Published()
    runners = []
    for published, owner in ((first, "server-1"), (second, "server-2")):
        runner = make_runner(published, leader_lock=lease(owner), status_store=CacheStatusStore())
        runner.add_check("cache", scripted("cache", "healthy"), interval=1)
        runners.append(runner)
    for now in range(3):
        for runner in runners:
            await runner.run_once(now=float(now))
    assert len(first.of("health_update")) == 3 and second == []
    assert runners[0].is_leader and not runners[1].is_leader


async def test_the_other_runner_takes_over_when_the_leader_releases_the_lease():
    first, second = Published(), Published()
    leader = make_runner(first, leader_lock=lease("server-1"))
    standby = make_runner(second, leader_lock=lease("server-2"))
    for runner in (leader, standby):
        runner.add_check("cache", scripted("cache", "healthy"), interval=1)
    await leader.run_once(now=0.0)
    await standby.run_once(now=0.0)
    assert second == []
    await leader.leader_lock.arelease()
    await standby.run_once(now=1.0)
    assert standby.is_leader and len(second.of("health_update")) == 1
    await leader.run_once(now=1.0)
    assert not leader.is_leader


async def test_the_other_runner_takes_over_when_the_lease_expires():
    first, second = Published(), Published()
    crashed = make_runner(first, leader_lock=lease("server-1", ttl=1), check_timeout=0.2, tick=0.1)
    standby = make_runner(second, leader_lock=lease("server-2", ttl=1), check_timeout=0.2, tick=0.1)
    for runner in (crashed, standby):
        runner.add_check("cache", scripted("cache", "healthy"), interval=1)
    await crashed.run_once(now=0.0)
    await standby.run_once(now=0.0)
    assert second == []

    # The crashed leader stops renewing: the standby's round takes the lease once it ran
    # out (a 1 s lease in the cache: real time passes).
    async def took_over():
        await standby.run_once(now=1.0)
        return standby.is_leader

    assert await until(took_over, "the standby takes the expired lease", interval=0.1)
    assert second.of("health_update")


async def test_a_new_leader_does_not_alert_again_for_an_ongoing_outage():
    first, second = Published(), Published()
    leader = make_runner(first, leader_lock=lease("server-1"), status_store=CacheStatusStore())
    standby = make_runner(second, leader_lock=lease("server-2"), status_store=CacheStatusStore())
    for runner in (leader, standby):
        runner.add_check("database", scripted("database", "critical"), interval=1)
    await leader.run_once(now=0.0)
    assert len(first.of("health_alert")) == 1
    await leader.leader_lock.arelease()
    await standby.run_once(now=1.0)
    assert second.of("health_update") and second.of("health_alert") == []


def test_the_lease_must_outlive_a_round():
    with pytest.raises(ValueError, match="must outlive"):
        MonitorRunner(Published(), leader_lock=lease("x", ttl=5), check_timeout=5, tick=1)


def test_lease_holder_renews_and_others_are_refused():
    mine, theirs = lease("me"), lease("them")
    assert mine.acquire() and mine.acquire()
    assert not theirs.acquire()
    assert mine.holder() == "me"
    theirs.release()  # not theirs to release
    assert mine.holder() == "me"
    mine.release()
    assert mine.holder() is None and theirs.acquire()


# -- running for real ---------------------------------------------------------------------------


async def test_start_and_stop_run_rounds_and_release_the_lease():
    published = Published()
    runner = MonitorRunner(
        published, leader_lock=lease("loop", ttl=2), tick=0.05, check_timeout=0.5,
        health_check_interval=0.1,
    )  # fmt: skip
    runner.add_check("cache", scripted("cache", "healthy"), interval=0.1)
    runner.start()
    # Rounds every 0.1 s: wait for three of them rather than a fixed time (a loaded machine
    # runs them late, not never).
    await until(lambda: len(published.of("health_update")) >= 3, "three rounds publish")
    await runner.stop()
    assert published.of("health_check")
    assert runner.leader_lock.holder() is None


@pytest.mark.django_db(transaction=True)
async def test_the_default_runner_publishes_metrics_components_and_health_check():
    published = Published()
    runner = build_default_runner(published, config={"DISK_PATH": "/", "LEADER_TTL": 20})
    await runner.run_once()
    kinds = {kind for kind, _, _ in published}
    assert kinds >= {"system_metrics", "health_update", "system_status", "health_check"}
    components = {data["component"] for data in published.of("health_update")}
    # With the DNS app's monitors (dns.monitors; bind9 only with the BIND integration on).
    assert components == {
        "system",
        "database",
        "cache",
        "channel_layer",
        "dns_forwarders",
        "threat_feeds",
    }
    statuses = {data["component"]: data["status"] for data in published.of("health_update")}
    assert statuses["database"] == statuses["cache"] == statuses["channel_layer"] == "healthy"
    await runner.leader_lock.arelease()
