import pytest

from incidents import services
from incidents.exceptions import (
    ConflictError,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from incidents.models import Alert, Incident, IncidentTimelineEntry
from tests.incidents.helpers import grant
from threatlens.audit.models import AuditLog

pytestmark = pytest.mark.django_db


def alert_data(**overrides):
    return {"title": "SSH brute force", "severity": "high", "source": "suricata", **overrides}


# --- ingest ------------------------------------------------------------------------------


def test_ingest_creates_an_alert_and_audits_it(integration):
    alert, created = services.ingest_alert(
        alert_data(external_id="e-1", source_ip="198.51.100.4", category="brute_force"),
        actor=integration,
    )
    assert created
    assert (alert.status, alert.occurrence_count, alert.source_ip) == ("new", 1, "198.51.100.4")
    row = AuditLog.objects.get(action="alert.create")
    assert (row.actor, row.target_id) == (integration, str(alert.pk))


def test_duplicate_ingest_updates_the_existing_alert(alice):
    first, _ = services.ingest_alert(alert_data(external_id="e-1"), actor=alice)
    again, created = services.ingest_alert(
        alert_data(external_id="e-1", severity="critical", description="seen again"), actor=alice
    )
    assert not created
    assert again.pk == first.pk
    assert Alert.objects.count() == 1
    again.refresh_from_db()
    assert (again.occurrence_count, again.severity, again.description) == (
        2,
        "critical",
        "seen again",
    )
    assert again.last_seen_at >= first.last_seen_at
    row = AuditLog.objects.get(action="alert.duplicate")
    assert row.old_values["severity"] == "high"
    assert row.new_values["occurrence_count"] == 2


def test_duplicate_ingest_keeps_status_owner_and_incident(alice):
    alert, _ = services.ingest_alert(alert_data(external_id="e-1"), actor=alice)
    services.take_alert_ownership(alert.pk, actor=alice)
    again, _ = services.ingest_alert(alert_data(external_id="e-1"), actor=alice)
    again.refresh_from_db()
    assert again.assigned_analyst == alice
    assert again.status == "in_progress"
    assert again.incident_id is not None


def test_same_external_id_from_another_source_is_another_alert(alice):
    services.ingest_alert(alert_data(external_id="e-1"), actor=alice)
    _, created = services.ingest_alert(alert_data(external_id="e-1", source="zeek"), actor=alice)
    assert created


def test_system_ingest_needs_no_user():
    alert, created = services.ingest_alert(alert_data(), actor=None)
    assert created
    assert AuditLog.objects.get(action="alert.create").actor is None


def test_viewer_cannot_ingest(bob):
    with pytest.raises(PermissionDenied):
        services.ingest_alert(alert_data(), actor=bob)
    assert not Alert.objects.exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"severity": "high", "source": "x"}, "title"),
        (alert_data(severity="apocalyptic"), "severity"),
        (alert_data(source_ip="not-an-ip"), "source_ip"),
        (alert_data(source_port=70000), "source_port"),
        (alert_data(confidence=1.5), "confidence"),
        (alert_data(details=["a"]), "details"),
    ],
)
def test_invalid_ingest_is_refused_and_changes_nothing(alice, data, field):
    with pytest.raises(ValidationError) as caught:
        services.ingest_alert(data, actor=alice)
    assert field in caught.value.details["errors"]
    assert field in caught.value.message
    assert caught.value.error_code == "INVALID_MESSAGE"
    assert not Alert.objects.exists()
    assert not AuditLog.objects.filter(action__startswith="alert.").exists()


def test_ingest_severity_is_case_insensitive(alice):
    alert, _ = services.ingest_alert(alert_data(severity="Critical"), actor=alice)
    assert alert.severity == "critical"


def test_ingest_of_something_else_than_an_object_is_refused(alice):
    with pytest.raises(ValidationError, match="object"):
        services.ingest_alert(["not", "an", "alert"], actor=alice)


# --- bulk ingest -----------------------------------------------------------------------


def test_bulk_ingest_creates_and_updates(alice):
    existing, _ = services.ingest_alert(alert_data(external_id="old"), actor=alice)
    result = services.ingest_alerts(
        [
            alert_data(external_id="old", description="again"),
            alert_data(external_id="n-1"),
            alert_data(external_id="n-1", severity="critical"),  # repeat inside the batch
            alert_data(),
        ],
        actor=alice,
    )
    assert [a.pk for a in result.updated] == [existing.pk]
    assert len(result.created) == 2
    ids = [alert_id for alert_id, _created in result.results]
    assert ids[0] == existing.pk and ids[1] == ids[2]
    assert [created for _id, created in result.results] == [False, True, True, True]
    repeated = Alert.objects.get(external_id="n-1")
    assert (repeated.occurrence_count, repeated.severity) == (2, "critical")
    existing.refresh_from_db()
    assert (existing.occurrence_count, existing.description) == (2, "again")
    assert AuditLog.objects.filter(action="alert.bulk_ingest").count() == 1


def test_bulk_ingest_is_all_or_nothing(alice):
    with pytest.raises(ValidationError) as caught:
        services.ingest_alerts(
            [alert_data(), alert_data(severity="bad"), alert_data(), "junk"], actor=alice
        )
    assert set(caught.value.details["errors"]) == {"1", "3"}
    assert "none were stored" in caught.value.message
    assert not Alert.objects.exists()


@pytest.mark.parametrize("payload", [{}, [], "text", [alert_data()] * 1001])
def test_bulk_ingest_needs_a_list_of_reasonable_size(alice, payload):
    with pytest.raises(ValidationError):
        services.ingest_alerts(payload, actor=alice)
    assert not Alert.objects.exists()


def test_alerts_checked_before_the_transaction_are_stored_with_their_external_ids(alice):
    """The pipeline checks its alerts before it takes the write lock, and gives them
    their external ids inside (chunk_store.AlertRaiser)."""
    checked = services.check_alerts([alert_data(), alert_data(title="second")])

    result = services.ingest_alerts(checked.with_external_ids([" k-1 ", "k-2"]), actor=alice)

    assert len(result.created) == 2
    assert set(Alert.objects.values_list("external_id", flat=True)) == {"k-1", "k-2"}


def test_a_checked_alert_refuses_an_invalid_external_id(alice):
    checked = services.check_alerts([alert_data()])
    with pytest.raises(ValidationError) as caught:
        checked.with_external_ids(["x" * 300])
    assert set(caught.value.details["errors"]["0"]) == {"external_id"}
    with pytest.raises(ValidationError, match="invalid"):
        services.check_alerts([alert_data(severity="bad")])
    assert not Alert.objects.exists()


def test_viewer_cannot_bulk_ingest(bob):
    with pytest.raises(PermissionDenied):
        services.ingest_alerts([alert_data()], actor=bob)


# --- taking ownership ----------------------------------------------------------------------


def test_taking_an_alert_opens_a_new_incident(alice, make_alert):
    alert = make_alert(severity="critical", correlation_key="brute:203.0.113.7")
    taken, incident = services.take_alert_ownership(alert.pk, actor=alice)
    assert incident is not None
    assert (taken.assigned_analyst, taken.status, taken.incident) == (
        alice,
        "in_progress",
        incident,
    )
    assert taken.first_response_at is not None
    assert (incident.owner, incident.severity, incident.priority, incident.status) == (
        alice,
        "critical",
        1,
        "new",
    )
    assert incident.reference.startswith("INC-")
    assert list(incident.alerts.all()) == [taken]
    kinds = list(incident.timeline.values_list("kind", flat=True))
    assert kinds == ["created", "alert_added"]
    assert AuditLog.objects.filter(action="alert.take_ownership", target_id=str(alert.pk)).exists()
    assert AuditLog.objects.filter(action="incident.create").exists()


def test_taking_a_correlated_alert_joins_the_takers_open_incident(alice, make_alert):
    first = make_alert(correlation_key="brute:203.0.113.7", severity="medium")
    _, incident = services.take_alert_ownership(first.pk, actor=alice)
    second = make_alert(correlation_key="brute:203.0.113.7", severity="critical")
    taken, joined = services.take_alert_ownership(second.pk, actor=alice)
    assert joined is None
    assert taken.incident == incident
    incident.refresh_from_db()
    assert incident.severity == "critical"  # raised to its worst alert
    assert set(incident.alerts.all()) == {first, second}


def test_an_uncorrelated_alert_gets_its_own_incident(alice, take):
    _, first = take(alice, correlation_key="a")
    _, second = take(alice, correlation_key="b")
    assert first is not None and second is not None and first != second


def test_alerts_without_correlation_key_never_join(alice, take):
    _, first = take(alice, correlation_key="")
    _, second = take(alice, correlation_key="")
    assert first != second and second is not None


def test_a_correlated_alert_does_not_join_someone_elses_incident(alice, dave, take):
    _, alices = take(alice, correlation_key="k")
    _, daves = take(dave, correlation_key="k")
    assert daves is not None and daves != alices


@pytest.mark.parametrize("status", ["resolved", "closed"])
def test_a_correlated_alert_does_not_join_a_finished_incident(alice, take, status):
    _, incident = take(alice, correlation_key="k")
    if status == "closed":
        services.update_incident_status(incident.pk, "resolved", actor=alice)
    services.update_incident_status(incident.pk, status, actor=alice)
    _, again = take(alice, correlation_key="k")
    assert again is not None and again != incident


def test_taking_your_own_alert_again_changes_nothing(alice, take):
    alert, incident = take(alice)
    again, joined = services.take_alert_ownership(alert.pk, actor=alice)
    assert joined is None and again.incident_id == incident.pk
    assert Incident.objects.count() == 1


def test_taking_someone_elses_alert_is_a_conflict_naming_the_owner(alice, dave, take):
    alert, _ = take(alice)
    with pytest.raises(ConflictError) as caught:
        services.take_alert_ownership(alert.pk, actor=dave)
    assert "alice" in caught.value.message
    assert caught.value.details["owner"] == {"id": alice.pk, "username": "alice"}
    assert caught.value.error_code == "CONFLICT"
    alert.refresh_from_db()
    assert alert.assigned_analyst == alice


def test_reassigning_needs_the_permission_and_is_audited(alice, dave, take):
    alert, alices_incident = take(alice)
    dave = grant(dave, "reassign_alert")
    taken, daves_incident = services.take_alert_ownership(alert.pk, actor=dave)
    assert taken.assigned_analyst == dave
    assert daves_incident is not None and daves_incident.owner == dave
    row = AuditLog.objects.get(action="alert.reassign")
    assert (row.old_values, row.new_values["assigned_analyst"]) == (
        {"assigned_analyst": "alice"},
        "dave",
    )
    # The alert left alice's incident, which says so in its timeline.
    assert not alices_incident.alerts.exists()
    assert alices_incident.timeline.filter(kind="alert_removed").exists()


def test_admin_may_take_over(alice, carol, take):
    alert, _ = take(alice)
    taken, _ = services.take_alert_ownership(alert.pk, actor=carol)
    assert taken.assigned_analyst == carol


def test_viewer_cannot_take_ownership(bob, make_alert):
    alert = make_alert()
    with pytest.raises(PermissionDenied):
        services.take_alert_ownership(alert.pk, actor=bob)
    alert.refresh_from_db()
    assert alert.assigned_analyst is None
    assert not Incident.objects.exists()


def test_taking_a_missing_alert_is_not_found(alice):
    with pytest.raises(NotFound, match="Alert 999"):
        services.take_alert_ownership(999, actor=alice)


@pytest.mark.parametrize("bad", [None, "abc", -1, 0, True, 1.5, {"id": 1}])
def test_taking_with_a_malformed_alert_id_is_invalid(alice, bad):
    with pytest.raises(ValidationError, match="alert_id"):
        services.take_alert_ownership(bad, actor=alice)


def test_alert_id_may_be_a_string_of_digits(alice, make_alert):
    alert = make_alert()
    taken, _ = services.take_alert_ownership(str(alert.pk), actor=alice)
    assert taken.pk == alert.pk


def test_a_closed_alert_cannot_be_taken(alice, carol, make_alert):
    alert = make_alert(status="resolved")
    with pytest.raises(ConflictError, match="resolved"):
        services.take_alert_ownership(alert.pk, actor=alice)


# --- status --------------------------------------------------------------------------------


def test_owner_works_an_alert_through_its_statuses(alice, take):
    alert, _ = take(alice)
    resolved = services.update_alert_status(alert.pk, "resolved", actor=alice)
    assert resolved.resolved_at is not None
    reopened = services.update_alert_status(alert.pk, "in_progress", actor=alice)
    assert reopened.resolved_at is None
    row = AuditLog.objects.filter(action="alert.status_change").first()
    assert (row.old_values, row.new_values) == ({"status": "resolved"}, {"status": "in_progress"})


def test_alert_status_changes_show_in_its_incidents_timeline(alice, take):
    alert, incident = take(alice)
    services.update_alert_status(alert.pk, "false_positive", actor=alice)
    entry = incident.timeline.last()
    assert (entry.old_value, entry.new_value) == ("in_progress", "false_positive")


def test_an_invalid_transition_changes_nothing(alice, take):
    alert, _ = take(alice)
    services.update_alert_status(alert.pk, "false_positive", actor=alice)
    before = AuditLog.objects.count()
    with pytest.raises(InvalidTransition) as caught:
        services.update_alert_status(alert.pk, "escalated", actor=alice)
    assert caught.value.details == {
        "from": "false_positive",
        "to": "escalated",
        "allowed": ["in_progress"],
    }
    alert.refresh_from_db()
    assert alert.status == "false_positive"
    assert AuditLog.objects.count() == before


@pytest.mark.parametrize("status", ["closed", "", None, 3, "NEW"])
def test_an_unknown_status_is_invalid(alice, take, status):
    alert, _ = take(alice)
    with pytest.raises(ValidationError, match="status"):
        services.update_alert_status(alert.pk, status, actor=alice)


def test_setting_the_current_status_changes_nothing(alice, take):
    alert, _ = take(alice)
    before = AuditLog.objects.count()
    services.update_alert_status(alert.pk, "in_progress", actor=alice)
    assert AuditLog.objects.count() == before


def test_only_the_owner_changes_an_alerts_status(alice, dave, take):
    alert, _ = take(alice)
    with pytest.raises(PermissionDenied, match="owned by alice"):
        services.update_alert_status(alert.pk, "resolved", actor=dave)
    dave = grant(dave, "change_others_alert")
    assert services.update_alert_status(alert.pk, "resolved", actor=dave).status == "resolved"


def test_an_unowned_alert_must_be_taken_before_its_status_changes(alice, make_alert):
    alert = make_alert()
    with pytest.raises(PermissionDenied, match="take ownership"):
        services.update_alert_status(alert.pk, "resolved", actor=alice)


def test_viewer_cannot_change_alert_status_even_with_others_permission(alice, bob, take):
    alert, _ = take(alice)
    with pytest.raises(PermissionDenied):
        services.update_alert_status(alert.pk, "resolved", actor=bob)


def test_first_response_is_stamped_once(carol, make_alert):
    alert = make_alert()
    changed = services.update_alert_status(alert.pk, "in_progress", actor=carol)
    stamped = changed.first_response_at
    assert stamped is not None
    later = services.update_alert_status(alert.pk, "resolved", actor=carol)
    assert later.first_response_at == stamped


def test_escalating_an_alert_without_incident_creates_one(carol, make_alert):
    alert = make_alert(correlation_key="c-1")
    escalated = services.update_alert_status(alert.pk, "escalated", actor=carol)
    assert escalated.incident is not None
    assert escalated.incident.owner == carol  # nobody owned the alert
    assert escalated.assigned_analyst is None


def test_escalating_an_owned_alert_keeps_its_incident(alice, take):
    alert, incident = take(alice)
    escalated = services.update_alert_status(alert.pk, "escalated", actor=alice)
    assert escalated.incident_id == incident.pk
    assert Incident.objects.count() == 1


def test_escalating_for_someone_else_puts_it_in_the_owners_incident(alice, carol, make_alert):
    alert = make_alert()
    # An alert that was assigned without an incident (e.g. in the admin).
    Alert.objects.filter(pk=alert.pk).update(assigned_analyst=alice, status="in_progress")
    escalated = services.update_alert_status(alert.pk, "escalated", actor=carol)
    assert escalated.incident.owner == alice
    assert IncidentTimelineEntry.objects.filter(incident=escalated.incident).exists()
