from datetime import UTC, datetime

import pytest
from django.db import IntegrityError

from incidents.models import (
    ALERT_TRANSITIONS,
    INCIDENT_TRANSITIONS,
    Alert,
    AlertStatus,
    IncidentStatus,
    alert_transition_allowed,
    incident_transition_allowed,
)
from tests.incidents.helpers import new_incident

pytestmark = pytest.mark.django_db


def test_every_alert_status_has_a_transition_entry():
    assert set(ALERT_TRANSITIONS) == set(AlertStatus)
    assert all(targets <= set(AlertStatus) for targets in ALERT_TRANSITIONS.values())


def test_every_incident_status_has_a_transition_entry():
    assert set(INCIDENT_TRANSITIONS) == set(IncidentStatus)
    assert all(targets <= set(IncidentStatus) for targets in INCIDENT_TRANSITIONS.values())


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        ("new", "in_progress", True),
        ("new", "escalated", True),
        ("in_progress", "resolved", True),
        ("resolved", "in_progress", True),
        ("resolved", "escalated", False),
        ("false_positive", "resolved", False),
        ("in_progress", "new", False),
        ("new", "bogus", False),
    ],
)
def test_alert_transitions(old, new, allowed):
    assert alert_transition_allowed(old, new) is allowed


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        ("new", "investigating", True),
        ("investigating", "contained", True),
        ("contained", "resolved", True),
        ("resolved", "closed", True),
        ("closed", "investigating", True),
        ("closed", "new", False),
        ("resolved", "contained", False),
        ("investigating", "new", False),
    ],
)
def test_incident_transitions(old, new, allowed):
    assert incident_transition_allowed(old, new) is allowed


def test_incident_references_count_up_per_year():
    first = new_incident(title="a", severity="low")
    second = new_incident(title="b", severity="low")
    year = first.created_at.year
    assert first.reference == f"INC-{year}-0001"
    assert second.reference == f"INC-{year}-0002"


def test_incident_references_restart_each_year():
    old = new_incident(
        title="a", severity="low", created_at=datetime(2025, 12, 31, 23, 59, tzinfo=UTC)
    )
    new = new_incident(title="b", severity="low", created_at=datetime(2026, 1, 1, 0, 1, tzinfo=UTC))
    also_old = new_incident(title="c", severity="low", created_at=datetime(2025, 6, 1, tzinfo=UTC))
    assert (old.reference, new.reference, also_old.reference) == (
        "INC-2025-0001",
        "INC-2026-0001",
        "INC-2025-0002",
    )


def test_source_and_external_id_are_unique_together(make_alert):
    make_alert(source="suricata", external_id="e-1")
    make_alert(source="zeek", external_id="e-1")  # another source may reuse the id
    with pytest.raises(IntegrityError):
        make_alert(source="suricata", external_id="e-1")


def test_alerts_without_external_id_never_clash(make_alert):
    make_alert(source="suricata", external_id="")
    make_alert(source="suricata", external_id="")
    assert Alert.objects.filter(source="suricata").count() == 2
