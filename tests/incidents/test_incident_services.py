import pytest

from incidents import services
from incidents.exceptions import InvalidTransition, NotFound, PermissionDenied, ValidationError
from incidents.models import Incident, IncidentWatcher
from incidents.queries import (
    alert_details_for,
    incident_details_for,
    initial_data_for,
    owned_incidents_for,
    recent_alerts_for,
)
from tests.incidents.helpers import grant
from threatlens.audit.models import AuditLog

pytestmark = pytest.mark.django_db


def test_incident_status_walks_its_lifecycle_with_timestamps(alice, take):
    _, incident = take(alice)
    contained = services.update_incident_status(incident.pk, "contained", actor=alice)
    assert contained.contained_at is not None
    closed = services.update_incident_status(incident.pk, "closed", actor=alice)
    assert closed.closed_at is not None and closed.resolved_at is not None
    reopened = services.update_incident_status(incident.pk, "investigating", actor=alice)
    assert (reopened.closed_at, reopened.resolved_at) == (None, None)
    assert reopened.contained_at == contained.contained_at
    changes = list(
        incident.timeline.filter(kind="status_changed").values_list("old_value", "new_value")
    )
    assert changes == [("new", "contained"), ("contained", "closed"), ("closed", "investigating")]
    assert AuditLog.objects.filter(action="incident.status_change").count() == 3


def test_an_invalid_incident_transition_changes_nothing(alice, take):
    _, incident = take(alice)
    services.update_incident_status(incident.pk, "resolved", actor=alice)
    with pytest.raises(InvalidTransition, match="cannot go from resolved to contained"):
        services.update_incident_status(incident.pk, "contained", actor=alice)
    incident.refresh_from_db()
    assert incident.status == "resolved"
    assert incident.timeline.filter(kind="status_changed").count() == 1


def test_an_unknown_incident_status_is_invalid(alice, take):
    _, incident = take(alice)
    with pytest.raises(ValidationError, match="not a incident status|use one of"):
        services.update_incident_status(incident.pk, "done", actor=alice)


def test_viewer_cannot_change_incidents(alice, bob, take):
    _, incident = take(alice)
    with pytest.raises(PermissionDenied):
        services.update_incident_status(incident.pk, "investigating", actor=bob)
    with pytest.raises(PermissionDenied):
        services.add_incident_comment(incident.pk, "hi", actor=bob)


def test_a_user_who_cannot_see_an_incident_gets_not_found(alice, make_user, take):
    _, incident = take(alice)
    eve = make_user("eve")
    eve = grant(eve, "change_incident", "view_incident")
    with pytest.raises(NotFound):
        services.update_incident_status(incident.pk, "investigating", actor=eve)


def test_updating_incident_fields_writes_the_timeline(alice, take):
    _, incident = take(alice, severity="low")
    updated = services.update_incident(
        incident.pk,
        {"title": "Brute force on bastion", "severity": "high", "priority": 1},
        actor=alice,
    )
    assert (updated.title, updated.severity, updated.priority) == (
        "Brute force on bastion",
        "high",
        1,
    )
    fields = set(incident.timeline.filter(kind="field_changed").values_list("field", flat=True))
    assert fields == {"title", "severity", "priority"}
    row = AuditLog.objects.get(action="incident.update")
    assert row.new_values["severity"] == "high"


@pytest.mark.parametrize("changes", [{}, {"severity": "huge"}, {"priority": 9}, "x"])
def test_invalid_incident_changes_are_refused(alice, take, changes):
    _, incident = take(alice)
    with pytest.raises(ValidationError):
        services.update_incident(incident.pk, changes, actor=alice)


def test_handing_an_incident_over_needs_the_reassign_permission(alice, dave, carol, take):
    _, incident = take(alice)
    with pytest.raises(PermissionDenied):
        services.update_incident(incident.pk, {"owner": dave.pk}, actor=alice)
    updated = services.update_incident(incident.pk, {"owner": dave.pk}, actor=carol)
    assert updated.owner == dave
    assert incident.timeline.filter(kind="owner_changed", new_value="dave").exists()


def test_an_incident_cannot_be_given_to_a_viewer(alice, bob, carol, take):
    _, incident = take(alice)
    with pytest.raises(ValidationError, match="bob may not work incidents"):
        services.update_incident(incident.pk, {"owner": bob.pk}, actor=carol)


def test_comments_are_added_to_the_incident_and_its_timeline(alice, take):
    _, incident = take(alice)
    comment = services.add_incident_comment(incident.pk, "  Blocked the address.  ", actor=alice)
    assert (comment.body, comment.author) == ("Blocked the address.", alice)
    assert incident.timeline.filter(kind="comment", message="Blocked the address.").exists()
    assert AuditLog.objects.filter(action="incident.comment").exists()


@pytest.mark.parametrize("body", ["", "   ", None, 5, "x" * 10_001])
def test_empty_or_oversized_comments_are_refused(alice, take, body):
    _, incident = take(alice)
    with pytest.raises(ValidationError):
        services.add_incident_comment(incident.pk, body, actor=alice)
    assert not incident.comments.exists()


# --- watching and visibility ---------------------------------------------------------------


def test_watching_shows_an_incident_to_a_user_without_see_all(alice, make_user, take):
    _, incident = take(alice)
    eve = make_user("eve", role="viewer")
    eve = grant(eve, "add_incidentwatcher")
    assert not Incident.objects.visible_to(eve).exists()
    services.watch_incident(incident.pk, actor=eve)
    services.watch_incident(incident.pk, actor=eve)  # twice is harmless
    assert list(Incident.objects.visible_to(eve)) == [incident]
    assert IncidentWatcher.objects.count() == 1
    services.unwatch_incident(incident.pk, actor=eve)
    assert not Incident.objects.visible_to(eve).exists()
    assert AuditLog.objects.filter(action__in=["incident.watch", "incident.unwatch"]).count() == 2


def test_a_viewer_cannot_watch_incidents_they_cannot_see(alice, bob, take):
    _, incident = take(alice)
    with pytest.raises(NotFound):
        services.watch_incident(incident.pk, actor=bob)


def test_analysts_may_watch_any_incident(alice, dave, take):
    _, incident = take(alice)
    services.watch_incident(incident.pk, actor=dave)
    assert incident.watchers.filter(user=dave).exists()


def test_unwatching_an_unknown_incident_is_not_found(alice):
    with pytest.raises(NotFound):
        services.unwatch_incident(404, actor=alice)


def test_analysts_see_all_incidents_viewers_none(alice, dave, bob, take):
    _, incident = take(alice)
    assert list(Incident.objects.visible_to(dave)) == [incident]
    assert not Incident.objects.visible_to(bob).exists()


# --- reads for the socket ------------------------------------------------------------------


def test_initial_data_for_an_analyst(alice, take, make_alert):
    _, incident = take(alice)
    make_alert()
    data = initial_data_for(alice)
    assert set(data) == {"user", "recent_incidents", "recent_alerts", "owned_incidents"}
    assert data["user"]["username"] == "alice"
    assert data["user"]["roles"] == ["analyst"]
    assert [i["id"] for i in data["owned_incidents"]] == [incident.pk]
    assert [i["id"] for i in data["recent_incidents"]] == [incident.pk]
    assert len(data["recent_alerts"]) == 2


def test_initial_data_for_a_viewer_has_alerts_but_no_incidents(alice, bob, take):
    take(alice)
    data = initial_data_for(bob)
    assert data["recent_incidents"] == [] and data["owned_incidents"] == []
    assert len(data["recent_alerts"]) == 1


def test_initial_data_for_a_user_without_permissions_is_empty(make_user, take, alice):
    take(alice)
    data = initial_data_for(make_user("nobody"))
    assert (data["recent_incidents"], data["recent_alerts"], data["owned_incidents"]) == (
        [],
        [],
        [],
    )


def test_owned_incidents_leave_out_closed_ones(alice, take):
    _, open_one = take(alice)
    _, closed = take(alice)
    services.update_incident_status(closed.pk, "closed", actor=alice)
    assert [i["id"] for i in owned_incidents_for(alice)] == [open_one.pk]


def test_recent_alerts_needs_the_view_permission(make_user):
    with pytest.raises(PermissionDenied):
        recent_alerts_for(make_user("nobody"))


def test_alert_details(alice, make_alert):
    alert = make_alert(category="web_scan")
    details = alert_details_for(str(alert.pk), alice)
    assert (details["id"], details["category"], details["source"]) == (
        alert.pk,
        "web_scan",
        "pipeline",
    )
    with pytest.raises(NotFound):
        alert_details_for(alert.pk + 100, alice)
    with pytest.raises(ValidationError):
        alert_details_for("x", alice)


def test_incident_details_respect_visibility(alice, bob, take):
    _, incident = take(alice)
    assert incident_details_for(incident.pk, alice)["reference"] == incident.reference
    with pytest.raises(PermissionDenied):
        incident_details_for(incident.pk, bob.__class__.objects.create(username="x"))
    with pytest.raises(NotFound):
        incident_details_for(incident.pk, bob)
