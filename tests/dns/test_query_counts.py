"""What one DNS write costs in SQL: its reads, its writes, and one INSERT for its events."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dns import services
from realtime.models import Event
from tests.dns.helpers import grant

# Also the busy timeout `realtime.write_lock` sets around an event INSERT on SQLite.
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA BUSY_TIMEOUT")


def statements(captured):
    """The SQL statements run, without transaction control (which SQLite logs and
    PostgreSQL does not) and SQLite's lock wait settings."""
    return [
        query["sql"]
        for query in captured.captured_queries
        if not query["sql"].lstrip().upper().startswith(TRANSACTION_CONTROL)
    ]


@pytest.fixture
def editable_record(transactional_db, alice):
    zone = services.create_zone(None, {"name": "costs.example", "email": "h@example.com"})
    grant(zone, alice, can_change=True)
    record = services.create_record(
        None, zone.pk, {"name": "www", "record_type": "A", "value": "192.0.2.1"}
    )
    alice.get_all_permissions()  # a request has read them already (DRF's permission check)
    return record


def test_a_record_update_reads_five_rows_writes_three_and_publishes_in_one_insert(
    alice, editable_record
):
    before = Event.objects.count()
    with CaptureQueriesContext(connection) as captured:
        services.update_record(alice, editable_record.pk, {"value": "192.0.2.2"}, version=None)
    sql = statements(captured)
    reads = [s for s in sql if s.lstrip().upper().startswith("SELECT")]
    event_inserts = [s for s in sql if s.startswith('INSERT INTO "realtime_event"')]
    # Reads: the zone (locked, found through the record), running bulk jobs, the record
    # (locked), its neighbours (conflicts), the zone's readers (the event's recipients).
    assert len(reads) == 5, "\n".join(reads)
    # Writes: the record, the zone's serial, the audit row, and the events.
    assert len(sql) == 9, "\n".join(sql)
    assert len(event_inserts) == 1
    published = Event.objects.order_by("id")[before:]
    assert sorted(e.event_type for e in published) == [
        "config_change",
        "record_updated",
        "user_action",
    ]


def test_updating_one_record_twice_in_a_transaction_publishes_it_once(alice, editable_record):
    from django.db import transaction

    before = Event.objects.count()
    with transaction.atomic():
        services.update_record(alice, editable_record.pk, {"value": "192.0.2.2"}, version=None)
        services.update_record(alice, editable_record.pk, {"ttl": 600}, version=None)
    published = list(Event.objects.order_by("id")[before:])
    updates = [e for e in published if e.event_type == "record_updated"]
    assert len(updates) == 1 and updates[0].data["record"]["ttl"] == 600
    assert {c["field"]: c["new_value"] for c in updates[0].data["changes"]} == {
        "value": "192.0.2.2",
        "ttl": 600,
    }
    assert [e.event_type for e in published].count("config_change") == 1
    assert [e.event_type for e in published].count("user_action") == 2  # audit rows stay
