"""The admin: pages load, saves publish (through save()) and are audited."""

from datetime import datetime

import pytest
from django.forms.models import model_to_dict

from incidents.models import Alert, Incident
from tests.incidents.conftest import events
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


def test_admin_save_of_an_alert_publishes_and_audits(
    admin_client, make_alert, django_capture_on_commit_callbacks
):
    alert = make_alert(severity="low")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/incidents/alert/{alert.pk}/change/",
            form_data(alert, severity="critical", status="in_progress"),
        )
    assert response.status_code == 302, response.context["adminform"].form.errors
    [event] = [e for e in events() if e.event_type == "alert_updated"]
    assert (event.data["severity"], event.data["status"]) == ("critical", "in_progress")
    row = AuditLog.objects.get(action="alert.admin_change")
    assert row.old_values["severity"] == "low" and row.new_values["severity"] == "critical"


def test_admin_refuses_an_invalid_alert_transition(admin_client, make_alert):
    alert = make_alert(status="resolved")
    response = admin_client.post(
        f"/admin/incidents/alert/{alert.pk}/change/", form_data(alert, status="escalated")
    )
    assert response.status_code == 200
    assert "Cannot go from resolved to escalated" in response.content.decode()
    alert.refresh_from_db()
    assert alert.status == "resolved"


def test_admin_creates_an_incident_with_a_reference(
    admin_client, carol, django_capture_on_commit_callbacks
):
    data = {
        "title": "Phishing wave",
        "description": "",
        "severity": "medium",
        "priority": 3,
        "status": "new",
        "owner": carol.pk,
        "created_at_0": "2026-03-01",
        "created_at_1": "10:00:00",
    }
    data.update(form_data(Incident(), **data))
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/incidents/incident/add/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    incident = Incident.objects.get()
    assert incident.reference == "INC-2026-0001"
    assert [e.event_type for e in events()] == ["incident_created"]
    assert incident.timeline.filter(kind="created").exists()


def test_admin_incident_status_change_publishes_and_is_on_the_timeline(
    admin_client, alice, take, django_capture_on_commit_callbacks
):
    _, incident = take(alice)
    data = form_data(incident, status="investigating")
    data["alerts-TOTAL_FORMS"] = data["alerts-INITIAL_FORMS"] = 1
    data["alerts-0-id"] = incident.alerts.get().pk
    data["alerts-0-incident"] = incident.pk
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/incidents/incident/{incident.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert [e.event_type for e in events()] == ["incident_updated"]
    assert incident.timeline.filter(kind="status_changed", new_value="investigating").exists()
    assert Alert.objects.get().incident == incident
