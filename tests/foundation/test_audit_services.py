"""Writing audit rows: one at a time, or several in one INSERT (socket audit rows)."""

import pytest

from realtime.models import Event
from threatlens.audit.models import AuditLog
from threatlens.audit.services import record_many

pytestmark = pytest.mark.django_db


def test_record_many_writes_every_row_and_tells_admins_of_each_after_commit(
    bob, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        entries = record_many(
            [
                {"action": "realtime.connect", "actor": bob, "ip": "10.0.0.1", "target_id": "a"},
                {"action": "realtime.disconnect", "ip": "not an address", "target_id": "b"},
            ]
        )
        assert not Event.objects.filter(data__action="realtime.connect").exists()  # not yet
    for callback in callbacks:
        callback()
    rows = list(AuditLog.objects.filter(action__startswith="realtime.").order_by("id"))
    assert [(r.action, r.actor_id, r.ip_address) for r in rows] == [
        ("realtime.connect", bob.pk, "10.0.0.1"),
        ("realtime.disconnect", None, None),
    ]
    assert [e.pk for e in entries] == [r.pk for r in rows]
    published = Event.objects.filter(event_type="user_action").order_by("id")
    assert [e.data["audit_id"] for e in published][-2:] == [r.pk for r in rows]
