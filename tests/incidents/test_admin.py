"""The admin: pages load; its changes go through the services, so they publish, are
on the timeline and are audited like REST changes."""

from datetime import datetime

import pytest
from django.forms.models import model_to_dict

from incidents.models import Alert
from tests.incidents.helpers import events
from threatlens.audit.models import AuditLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, carol):
    client.force_login(carol)
    return client


def form_data(obj, **changes):
    data = {}
    for name, value in model_to_dict(obj).items():
        if isinstance(value, datetime):  # the admin's split date/time widget
            data[f"{name}_0"], data[f"{name}_1"] = value.date(), value.strftime("%H:%M:%S")
        elif name != "id":
            data[name] = "" if value is None else value
    if "details" in data:
        data["details"] = "{}"
    for prefix in ("alerts", "timeline", "comments", "watchers"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    data.update(changes)
    return data


def test_admin_lists_and_change_pages_load(admin_client, alice, take):
    alert, incident = take(alice)
    for url in (
        "/admin/incidents/alert/",
        f"/admin/incidents/alert/{alert.pk}/change/",
        "/admin/incidents/incident/",
        f"/admin/incidents/incident/{incident.pk}/change/",
        "/admin/incidents/alert/?status__exact=in_progress&q=Suspicious",
    ):
        assert admin_client.get(url).status_code == 200, url


def test_viewer_cannot_open_the_admin(client, bob):
    client.force_login(bob)
    assert client.get("/admin/incidents/alert/").status_code == 302


def test_admin_status_change_of_an_alert_goes_through_the_service(
    admin_client, carol, make_alert, django_capture_on_commit_callbacks
):
    alert = make_alert(severity="low")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/incidents/alert/{alert.pk}/change/",
            form_data(alert, severity="critical", status="in_progress"),
        )
    assert response.status_code == 302, response.context["adminform"].form.errors
    [event] = [e for e in events() if e.event_type == "alert_updated"]
    # Severity is not something the services change: read-only in the admin.
    assert (event.data["severity"], event.data["status"]) == ("low", "in_progress")
    row = AuditLog.objects.get(action="alert.status_change")
    assert row.actor == carol and row.new_values == {"status": "in_progress"}


def test_admin_refuses_an_invalid_alert_transition(admin_client, make_alert):
    alert = make_alert(status="resolved")
    response = admin_client.post(
        f"/admin/incidents/alert/{alert.pk}/change/", form_data(alert, status="escalated")
    )
    assert response.status_code == 200
    assert "Cannot go from resolved to escalated" in response.content.decode()
    alert.refresh_from_db()
    assert alert.status == "resolved"


def test_alerts_and_incidents_are_neither_added_nor_deleted_in_the_admin(admin_client, alice, take):
    alert, incident = take(alice)
    for url in (
        "/admin/incidents/alert/add/",
        "/admin/incidents/incident/add/",
        f"/admin/incidents/alert/{alert.pk}/delete/",
        f"/admin/incidents/incident/{incident.pk}/delete/",
    ):
        assert admin_client.post(url, {"post": "yes"}).status_code == 403, url
    assert Alert.objects.filter(pk=alert.pk).exists()


def incident_form(incident, **changes):
    data = form_data(incident, **changes)
    data["alerts-TOTAL_FORMS"] = data["alerts-INITIAL_FORMS"] = 1
    data["alerts-0-id"] = incident.alerts.get().pk
    data["alerts-0-incident"] = incident.pk
    return data


def test_admin_incident_status_change_publishes_and_is_on_the_timeline(
    admin_client, alice, carol, take, django_capture_on_commit_callbacks
):
    _, incident = take(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/incidents/incident/{incident.pk}/change/",
            incident_form(incident, status="investigating"),
        )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert [e.event_type for e in events()] == ["incident_updated"]
    assert incident.timeline.filter(kind="status_changed", new_value="investigating").exists()
    assert AuditLog.objects.get(action="incident.status_change").actor == carol
    assert Alert.objects.get().incident == incident


def test_admin_incident_field_and_owner_changes_go_through_the_service(
    admin_client, alice, carol, take, django_capture_on_commit_callbacks
):
    _, incident = take(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/incidents/incident/{incident.pk}/change/",
            incident_form(incident, title="Renamed", owner=carol.pk),
        )
    assert response.status_code == 302, response.context["adminform"].form.errors
    incident.refresh_from_db()
    assert (incident.title, incident.owner) == ("Renamed", carol)
    row = AuditLog.objects.get(action="incident.update")
    assert row.actor == carol
    assert row.new_values == {"title": "Renamed", "owner": carol.username}
    assert incident.timeline.filter(kind="owner_changed").exists()
    assert "incident_updated" in [e.event_type for e in events()]


def test_a_refusal_of_the_service_is_shown_and_changes_nothing(
    admin_client, alice, take, make_user
):
    _, incident = take(alice)
    bob_like = make_user("vic", role="viewer")  # may not work incidents
    response = admin_client.post(
        f"/admin/incidents/incident/{incident.pk}/change/",
        incident_form(incident, title="Renamed", owner=bob_like.pk),
        follow=True,
    )
    assert "Nothing was changed" in response.content.decode()
    incident.refresh_from_db()
    assert incident.title != "Renamed" and incident.owner == alice
