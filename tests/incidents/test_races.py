"""Concurrency, with real threads and their own database connections.

Meaningful on PostgreSQL, where the row locks (`select_for_update`) decide the outcome.
On SQLite every write transaction takes the database lock up front (IMMEDIATE), so the
same tests pass there by serialisation; the delay injected inside the critical section
makes sure the two callers really overlap in time on both.
"""

import threading
import time

import pytest
from django.db import connection

from incidents import services
from incidents.exceptions import ConflictError
from incidents.models import Alert, Incident

pytestmark = pytest.mark.django_db(transaction=True)

HOLD = 0.3  # seconds the first caller keeps its lock while the second one arrives


def run_together(*calls):
    """Run the calls in threads started at the same moment; returns results or exceptions."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.fixture
def slow_placement(monkeypatch):
    """Hold the critical section of take_alert_ownership open for HOLD seconds."""
    original = services._place_in_incident

    def slow(*args, **kwargs):
        time.sleep(HOLD)
        return original(*args, **kwargs)

    monkeypatch.setattr(services, "_place_in_incident", slow)


def test_of_two_analysts_taking_one_alert_at_once_exactly_one_wins(
    alice, dave, make_alert, slow_placement
):
    alert = make_alert()
    results = run_together(
        lambda: services.take_alert_ownership(alert.pk, actor=alice),
        lambda: services.take_alert_ownership(alert.pk, actor=dave),
    )
    wins = [r for r in results if isinstance(r, tuple)]
    conflicts = [r for r in results if isinstance(r, ConflictError)]
    assert (len(wins), len(conflicts)) == (1, 1), results
    winner = wins[0][0].assigned_analyst
    assert winner.username in conflicts[0].message
    assert conflicts[0].details["owner"]["username"] == winner.username
    alert.refresh_from_db()
    assert alert.assigned_analyst == winner
    assert Incident.objects.count() == 1
    assert Incident.objects.get().owner == winner


def test_one_analyst_taking_two_correlated_alerts_at_once_gets_one_incident(
    alice, make_alert, slow_placement
):
    first, second = make_alert(correlation_key="k"), make_alert(correlation_key="k")
    results = run_together(
        lambda: services.take_alert_ownership(first.pk, actor=alice),
        lambda: services.take_alert_ownership(second.pk, actor=alice),
    )
    assert all(isinstance(r, tuple) for r in results), results
    assert sorted(r[1] is None for r in results) == [False, True]  # one created, one joined
    assert Incident.objects.count() == 1
    assert Incident.objects.get().alerts.count() == 2


def test_concurrent_incidents_get_distinct_numbers(alice, dave, make_alert):
    alerts = [make_alert() for _ in range(4)]
    users = [alice, dave, alice, dave]
    results = run_together(
        *(
            (lambda a=a, u=u: services.take_alert_ownership(a.pk, actor=u))
            for a, u in zip(alerts, users, strict=True)
        )
    )
    assert all(isinstance(r, tuple) for r in results), results
    references = sorted(Incident.objects.values_list("reference", flat=True))
    year = Incident.objects.first().created_at.year
    assert references == [f"INC-{year}-000{n}" for n in range(1, 5)]


def test_concurrent_first_deliveries_of_one_alert_make_one_alert(integration):
    data = {"title": "t", "severity": "low", "source": "edr", "external_id": "x-1"}
    results = run_together(
        lambda: services.ingest_alert(data, actor=integration),
        lambda: services.ingest_alert(data, actor=integration),
        lambda: services.ingest_alert(data, actor=integration),
    )
    assert all(isinstance(r, tuple) for r in results), results
    assert sorted(created for _alert, created in results) == [False, False, True]
    assert Alert.objects.get().occurrence_count == 3
