"""Case work over REST: adding alerts to an incident, moving one, merging incidents, editing
an incident; each refused with an error_code and no change, each published after commit."""

import pytest
from django.contrib.auth.models import Group

from incidents.models import Alert, Incident, IncidentComment, IncidentWatcher, TimelineKind
from tests.incidents.helpers import events
from threatlens.writeguard import service_writes

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_user(api_client, token_for):
    def login(user):
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
        return api_client

    return login


def test_an_analyst_adds_unowned_alerts_to_her_incident_and_colleagues_hear_of_it(
    as_user, alice, take, make_alert, django_capture_on_commit_callbacks
):
    _first, incident = take(alice)
    loose = [make_alert(severity="critical"), make_alert()]
    with django_capture_on_commit_callbacks(execute=True):
        response = as_user(alice).post(
            f"/api/incidents/{incident.pk}/alerts/",
            {"alert_ids": [a.pk for a in loose]},
            format="json",
        )
    assert response.status_code == 200, response.data
    assert sorted(response.data["moved"]) == sorted(a.pk for a in loose)
    assert response.data["incident"]["alert_count"] == 3
    assert response.data["incident"]["severity"] == "critical"
    for alert in Alert.objects.filter(pk__in=[a.pk for a in loose]):
        assert alert.incident_id == incident.pk
        assert alert.assigned_analyst == alice
        assert alert.status == "in_progress"
    kinds = [e.event_type for e in events()]
    assert kinds.count("alert_updated") == 2 and "incident_updated" in kinds
    timeline = incident.timeline.filter(kind=TimelineKind.ALERT_ADDED)
    assert timeline.count() == 3


def test_moving_an_alert_between_incidents_records_it_on_both(as_user, alice, take):
    alert, first = take(alice, correlation_key="a")
    _other, second = take(alice, correlation_key="b")
    response = as_user(alice).post(
        f"/api/alerts/{alert.pk}/move/", {"incident": second.pk}, format="json"
    )
    assert response.status_code == 200, response.data
    assert response.data["incident"] == second.pk
    assert first.timeline.filter(kind=TimelineKind.ALERT_REMOVED).exists()
    assert second.timeline.filter(
        kind=TimelineKind.ALERT_ADDED, message__contains=first.reference
    ).exists()


def test_an_analyst_may_not_move_a_colleagues_alert(as_user, alice, dave, take):
    alert, _incident = take(dave)
    _mine, target = take(alice)
    response = as_user(alice).post(
        f"/api/alerts/{alert.pk}/move/", {"incident": target.pk}, format="json"
    )
    assert response.status_code == 403
    assert response.data["error_code"] == "PERMISSION_DENIED"
    assert Alert.objects.get(pk=alert.pk).incident_id != target.pk


@pytest.mark.parametrize(
    "body, code",
    [
        ({}, 400),
        ({"alert_ids": "x"}, 400),
        ({"alert_ids": [0]}, 400),
        ({"alert_ids": [99999]}, 404),
    ],
)
def test_bad_alert_lists_are_refused_with_an_error_code(as_user, alice, take, body, code):
    _alert, incident = take(alice)
    response = as_user(alice).post(f"/api/incidents/{incident.pk}/alerts/", body, format="json")
    assert response.status_code == code
    assert response.data["error_code"] in {"INVALID_MESSAGE", "NOT_FOUND"}


def test_a_viewer_may_not_add_alerts(as_user, alice, bob, take, make_alert):
    _alert, incident = take(alice)
    loose = make_alert()
    response = as_user(bob).post(
        f"/api/incidents/{incident.pk}/alerts/", {"alert_ids": [loose.pk]}, format="json"
    )
    assert response.status_code == 403
    assert Alert.objects.get(pk=loose.pk).incident_id is None


def test_merging_keeps_alerts_comments_and_watchers_and_closes_the_source(
    as_user, alice, dave, carol, take, django_capture_on_commit_callbacks
):
    _a, target = take(alice, severity="medium")
    b, source = take(dave, severity="critical")
    with service_writes():  # setup
        IncidentComment.objects.create(incident=source, author=dave, body="Seen on the VPN too.")
        IncidentWatcher.objects.create(incident=source, user=alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = as_user(carol).post(
            f"/api/incidents/{target.pk}/merge/", {"incident_ids": [source.pk]}, format="json"
        )
    assert response.status_code == 200, response.data
    assert response.data["alert_count"] == 2
    assert response.data["severity"] == "critical"
    source.refresh_from_db()
    assert source.status == "closed" and source.merged_into_id == target.pk
    assert Alert.objects.get(pk=b.pk).incident_id == target.pk
    assert target.comments.filter(body="Seen on the VPN too.").exists()
    # Dave owned the source: he now watches the target (alice owns it already).
    assert set(target.watchers.values_list("user__username", flat=True)) == {"dave"}
    merged = target.timeline.get(kind=TimelineKind.MERGED)
    assert source.reference in merged.message
    assert source.timeline.filter(kind=TimelineKind.MERGED).exists()
    updated = {e.data["id"] for e in events("incident_updated")}
    assert {target.pk, source.pk} <= updated


def test_merging_a_colleagues_incident_needs_the_reassign_permission(as_user, alice, dave, take):
    _a, target = take(alice)
    _b, source = take(dave)
    response = as_user(alice).post(
        f"/api/incidents/{target.pk}/merge/", {"incident_ids": [source.pk]}, format="json"
    )
    assert response.status_code == 403
    assert response.data["error_code"] == "PERMISSION_DENIED"
    assert Incident.objects.get(pk=source.pk).status == "new"


def test_an_incident_cannot_be_merged_into_itself_or_a_closed_one(as_user, alice, carol, take):
    _a, incident = take(alice)
    client = as_user(carol)
    itself = client.post(
        f"/api/incidents/{incident.pk}/merge/", {"incident_ids": [incident.pk]}, format="json"
    )
    assert itself.status_code == 400 and itself.data["error_code"] == "INVALID_MESSAGE"
    _b, other = take(alice, correlation_key="other")
    Incident.objects.filter(pk=incident.pk).update(status="closed")
    closed = client.post(
        f"/api/incidents/{incident.pk}/merge/", {"incident_ids": [other.pk]}, format="json"
    )
    assert closed.status_code == 409 and closed.data["error_code"] == "CONFLICT"


def test_assignees_lists_who_may_work_incidents(as_user, alice, bob, carol):
    names = [u["username"] for u in as_user(alice).get("/api/incidents/assignees/").data]
    assert "alice" in names and "carol" in names and "bob" not in names


def test_an_owner_change_needs_the_reassign_permission(as_user, alice, dave, carol, take):
    _a, incident = take(alice)
    refused = as_user(alice).patch(
        f"/api/incidents/{incident.pk}/", {"owner": dave.pk}, format="json"
    )
    assert refused.status_code == 403 and refused.data["error_code"] == "PERMISSION_DENIED"
    done = as_user(carol).patch(
        f"/api/incidents/{incident.pk}/",
        {"owner": dave.pk, "title": "VPN brute force", "priority": 1},
        format="json",
    )
    assert done.status_code == 200, done.data
    assert done.data["owner"]["username"] == "dave" and done.data["priority"] == 1


def test_an_alert_is_not_pulled_out_of_an_incident_the_actor_cannot_see(
    as_user, make_user, dave, take
):
    # A custom role: an analyst's permissions without seeing every incident.
    erin = make_user("erin")
    erin.user_permissions.set(
        Group.objects.get(name="analyst").permissions.exclude(codename="view_all_incidents")
    )
    alert, hidden = take(dave)
    Alert.objects.filter(pk=alert.pk).update(assigned_analyst=erin)  # reassigned, not moved
    _mine, target = take(erin)
    response = as_user(erin).post(
        f"/api/alerts/{alert.pk}/move/", {"incident": target.pk}, format="json"
    )
    assert response.status_code == 404
    assert response.data["error_code"] == "NOT_FOUND"
    assert Alert.objects.get(pk=alert.pk).incident_id == hidden.pk
    assert not hidden.timeline.filter(kind=TimelineKind.ALERT_REMOVED).exists()
