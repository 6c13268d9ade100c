"""Bulk triage over REST: one request, one action, many alerts, all or nothing, with the
same rules as one alert at a time, published for colleagues after commit."""

import pytest

from incidents.models import Alert
from tests.incidents.helpers import events, grant

pytestmark = pytest.mark.django_db
URL = "/api/alerts/bulk-triage/"


@pytest.fixture
def as_user(api_client, token_for):
    def login(user):
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
        return api_client

    return login


def test_an_analyst_takes_twenty_alerts_then_marks_them_false_positive_in_two_requests(
    as_user, alice, make_alert, django_capture_on_commit_callbacks
):
    ids = [make_alert(correlation_key="spray").pk for _ in range(20)]
    client = as_user(alice)
    with django_capture_on_commit_callbacks(execute=True):
        taken = client.post(URL, {"action": "take", "alert_ids": ids}, format="json")
    assert taken.status_code == 200, taken.data
    assert {a["assigned_analyst"]["username"] for a in taken.data["alerts"]} == {"alice"}
    # One correlation key: one incident for all twenty.
    assert Alert.objects.filter(pk__in=ids).values("incident").distinct().count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        closed = client.post(
            URL, {"action": "status", "status": "false_positive", "alert_ids": ids}, format="json"
        )
    assert closed.status_code == 200, closed.data
    assert set(Alert.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
        "false_positive"
    }
    updates = [e for e in events("alert_updated") if e.data["status"] == "false_positive"]
    assert len(updates) == 20


def test_one_refused_alert_changes_none_and_names_it(
    as_user, alice, dave, make_alert, take, django_capture_on_commit_callbacks
):
    free = [make_alert().pk for _ in range(3)]
    daves, _incident = take(dave)
    before = len(events())
    with django_capture_on_commit_callbacks(execute=True):
        response = as_user(alice).post(
            URL, {"action": "take", "alert_ids": [*free, daves.pk]}, format="json"
        )
    assert response.status_code == 409
    assert response.data["error_code"] == "CONFLICT"
    assert list(response.data["errors"]) == [str(daves.pk)]
    assert response.data["errors"][str(daves.pk)]["owner"]["username"] == "dave"
    assert not Alert.objects.filter(pk__in=free, assigned_analyst__isnull=False).exists()
    assert len(events()) == before


def test_a_viewer_may_not_triage(as_user, bob, make_alert):
    alert = make_alert()
    response = as_user(bob).post(URL, {"action": "take", "alert_ids": [alert.pk]}, format="json")
    assert response.status_code == 403
    assert response.data["error_code"] == "PERMISSION_DENIED"


@pytest.mark.parametrize(
    "body",
    [
        {"action": "explode", "alert_ids": [1]},
        {"action": "take"},
        {"action": "take", "alert_ids": []},
        {"action": "status", "alert_ids": [1], "status": "gone"},
        {"action": "assign", "alert_ids": [1]},
    ],
)
def test_bad_requests_are_refused_with_an_error_code(as_user, alice, make_alert, body):
    make_alert()
    response = as_user(alice).post(URL, body, format="json")
    assert response.status_code == 400, response.data
    assert response.data["error_code"] == "INVALID_MESSAGE"


def test_assigning_to_a_colleague_needs_the_reassign_permission(as_user, alice, dave, make_alert):
    ids = [make_alert().pk, make_alert().pk]
    body = {"action": "assign", "assignee": dave.pk, "alert_ids": ids}
    refused = as_user(alice).post(URL, body, format="json")
    assert refused.status_code == 403
    alice = grant(alice, "reassign_alert")
    done = as_user(alice).post(URL, body, format="json")
    assert done.status_code == 200, done.data
    assert {a["assigned_analyst"]["username"] for a in done.data["alerts"]} == {"dave"}


def test_add_to_incident_in_bulk(as_user, alice, make_alert, take):
    _first, incident = take(alice)
    ids = [make_alert().pk for _ in range(5)]
    response = as_user(alice).post(
        URL, {"action": "add_to_incident", "incident": incident.pk, "alert_ids": ids}, format="json"
    )
    assert response.status_code == 200, response.data
    assert {a["incident"] for a in response.data["alerts"]} == {incident.pk}
