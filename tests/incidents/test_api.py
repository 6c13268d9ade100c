from datetime import timedelta

import pytest
from django.utils import timezone

from incidents import services
from incidents.models import Alert
from tests.incidents.helpers import events, grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_user(api_client, token_for):
    """as_user(user) -> the API client, authenticated with the user's JWT."""

    def login(user):
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
        return api_client

    return login


ALERT = {"title": "SSH brute force", "description": "d", "severity": "high", "source": "suricata"}


# --- alerts: create -----------------------------------------------------------------------


def test_analyst_creates_an_alert(as_user, alice):
    response = as_user(alice).post("/api/alerts/", ALERT, format="json")
    assert response.status_code == 201, response.data
    assert response.data["status"] == "new"
    assert Alert.objects.get().title == "SSH brute force"


def test_integration_creates_alerts_and_a_repeat_updates(as_user, integration):
    body = {**ALERT, "external_id": "sig-1", "source_ip": "203.0.113.9", "extra": "ignored"}
    client = as_user(integration)
    assert client.post("/api/alerts/", body, format="json").status_code == 201
    again = client.post("/api/alerts/", body, format="json")
    assert again.status_code == 200
    assert again.data["occurrence_count"] == 2


def test_viewer_cannot_create_alerts(as_user, bob):
    response = as_user(bob).post("/api/alerts/", ALERT, format="json")
    assert response.status_code == 403
    assert response.data["error_code"] == "PERMISSION_DENIED"
    assert not Alert.objects.exists()


def test_invalid_alert_is_a_400_with_field_errors(as_user, alice):
    response = as_user(alice).post("/api/alerts/", {**ALERT, "severity": "x"}, format="json")
    assert response.status_code == 400
    assert response.data["error_code"] == "INVALID_MESSAGE"
    assert "severity" in response.data["errors"]
    assert "severity" in response.data["detail"]


def test_anonymous_requests_are_refused(api_client):
    assert api_client.get("/api/alerts/").status_code == 401
    assert api_client.post("/api/alerts/", ALERT, format="json").status_code == 401


def test_analyst_cannot_rewrite_another_owners_alert_by_ingesting_it_again(
    as_user, alice, dave, make_alert
):
    """source and external_id are readable by every role: a repeat delivery from someone
    who may not change the alert is refused like its status change, and changes nothing."""
    alert = make_alert(source="edr", external_id="edr-42", title="Ransomware", severity="high")
    services.take_alert_ownership(alert.pk, actor=dave)
    client = as_user(alice)
    forged = {"title": "nothing", "severity": "low", "source": "edr", "external_id": "edr-42"}
    response = client.post("/api/alerts/", {**forged, "risk_score": 1}, format="json")
    assert response.status_code == 403, response.data
    assert response.data["error_code"] == "PERMISSION_DENIED"
    assert response.data["owner"]["username"] == "dave"
    bulk = client.post("/api/alerts/bulk/", [ALERT, forged], format="json")
    assert bulk.status_code == 403
    assert client.post(f"/api/alerts/{alert.pk}/status/", {"status": "resolved"}).status_code == 403
    alert.refresh_from_db()
    assert (alert.title, alert.severity, alert.occurrence_count) == ("Ransomware", "high", 1)
    assert Alert.objects.count() == 1


def test_pipeline_alerts_are_updated_only_by_the_pipeline_or_a_privileged_user(
    as_user, alice, carol, make_alert
):
    make_alert(source="pipeline", external_id="rule:ssh:1", title="Brute force")
    body = {"title": "x", "severity": "low", "source": "pipeline", "external_id": "rule:ssh:1"}
    assert as_user(alice).post("/api/alerts/", body, format="json").status_code == 403
    assert as_user(carol).post("/api/alerts/", body, format="json").status_code == 200


def test_the_owner_may_deliver_an_alert_again(as_user, alice, integration):
    body = {**ALERT, "external_id": "sig-7"}
    created = as_user(integration).post("/api/alerts/", body, format="json")
    services.take_alert_ownership(created.data["id"], actor=alice)
    again = as_user(alice).post("/api/alerts/", {**body, "severity": "critical"}, format="json")
    assert again.status_code == 200, again.data
    # The account that raised it keeps updating it after an analyst took it.
    assert as_user(integration).post("/api/alerts/", body, format="json").status_code == 200


def test_bulk_create(as_user, integration):
    response = as_user(integration).post(
        "/api/alerts/bulk/", [ALERT, {**ALERT, "severity": "low"}], format="json"
    )
    assert response.status_code == 201, response.data
    assert (response.data["created"], response.data["updated"]) == (2, 0)
    assert [r["index"] for r in response.data["results"]] == [0, 1]


def test_bulk_create_with_a_bad_item_stores_nothing(as_user, alice):
    response = as_user(alice).post("/api/alerts/bulk/", [ALERT, {"title": ""}], format="json")
    assert response.status_code == 400
    assert set(response.data["errors"]) == {"1"}
    assert not Alert.objects.exists()


def test_bulk_create_needs_a_list(as_user, alice):
    response = as_user(alice).post("/api/alerts/bulk/", ALERT, format="json")
    assert response.status_code == 400
    assert "list" in response.data["detail"]


# --- alerts: read --------------------------------------------------------------------------


def test_viewer_lists_and_reads_alerts(as_user, bob, make_alert):
    alert = make_alert()
    client = as_user(bob)
    listing = client.get("/api/alerts/")
    assert listing.status_code == 200
    assert [a["id"] for a in listing.data["results"]] == [alert.pk]
    detail = client.get(f"/api/alerts/{alert.pk}/")
    assert (detail.data["id"], detail.data["category"], detail.data["source"]) == (
        alert.pk,
        "brute_force",
        "pipeline",
    )


def test_integration_without_view_permission_cannot_list(as_user, integration):
    assert as_user(integration).get("/api/alerts/").status_code == 403


def test_unknown_alert_is_404_with_error_code(as_user, alice):
    response = as_user(alice).get("/api/alerts/999/")
    assert response.status_code == 404
    assert response.data["error_code"] == "NOT_FOUND"


def ids(response):
    assert response.status_code == 200, response.data
    return [item["id"] for item in response.data["results"]]


def test_alert_filters(as_user, alice, dave, make_alert):
    now = timezone.now()
    old = make_alert(severity="low", source="zeek", detected_at=now - timedelta(days=3))
    mine = make_alert(severity="critical", title="Ransomware on fs01", affected_host="fs01")
    daves = make_alert(severity="medium", source_ip="198.51.100.77")
    services.take_alert_ownership(mine.pk, actor=alice)
    services.take_alert_ownership(daves.pk, actor=dave)
    client = as_user(alice)
    assert ids(client.get("/api/alerts/?status=new")) == [old.pk]
    assert set(ids(client.get("/api/alerts/?severity=critical&severity=low"))) == {old.pk, mine.pk}
    assert ids(client.get("/api/alerts/?owner=me")) == [mine.pk]
    assert ids(client.get("/api/alerts/?owner=none")) == [old.pk]
    assert ids(client.get("/api/alerts/?owner=dave")) == [daves.pk]
    assert ids(client.get(f"/api/alerts/?owner={dave.pk}")) == [daves.pk]
    assert ids(client.get("/api/alerts/?source=zeek")) == [old.pk]
    since = (now - timedelta(days=1)).isoformat()
    assert set(ids(client.get("/api/alerts/", {"detected_after": since}))) == {mine.pk, daves.pk}
    assert ids(client.get("/api/alerts/", {"detected_before": since})) == [old.pk]
    assert ids(client.get("/api/alerts/?search=fs01")) == [mine.pk]
    assert ids(client.get("/api/alerts/?search=ransomware")) == [mine.pk]
    assert ids(client.get("/api/alerts/?search=198.51.100.77")) == [daves.pk]
    assert ids(client.get("/api/alerts/?ordering=-severity")) == [mine.pk, daves.pk, old.pk]
    assert ids(client.get("/api/alerts/?ordering=severity")) == [old.pk, daves.pk, mine.pk]


def test_bad_filter_values_are_a_400(as_user, alice):
    client = as_user(alice)
    assert client.get("/api/alerts/?status=bogus").status_code == 400
    assert client.get("/api/alerts/?detected_after=yesterday").status_code == 400


def test_alert_list_is_paginated(as_user, alice, make_alert):
    for _ in range(3):
        make_alert()
    response = as_user(alice).get("/api/alerts/?page_size=2")
    assert response.data["count"] == 3
    assert len(response.data["results"]) == 2 and response.data["next"]


def test_alert_list_query_count_does_not_grow(
    as_user, alice, dave, make_alert, django_assert_num_queries
):
    client = as_user(alice)
    for n in range(6):
        alert = make_alert()
        if n % 2:
            services.take_alert_ownership(alert.pk, actor=dave)
    # user (JWT) + permissions (user, groups) + count + page (owner and incident joined)
    with django_assert_num_queries(5):
        response = client.get("/api/alerts/")
    assert len(response.data["results"]) == 6


# --- alerts: ownership and status ----------------------------------------------------------


def test_take_ownership_over_rest(as_user, alice, make_alert):
    alert = make_alert(correlation_key="k")
    client = as_user(alice)
    response = client.post(f"/api/alerts/{alert.pk}/take-ownership/")
    assert response.status_code == 200, response.data
    assert response.data["alert_id"] == alert.pk
    assert response.data["incident"]["owner"]["username"] == "alice"
    assert response.data["incident"]["alert_ids"] == [alert.pk]
    second = make_alert(correlation_key="k")
    joined = client.post(f"/api/alerts/{second.pk}/take-ownership/")
    assert joined.data["incident"] is None
    assert joined.data["incident_id"] == response.data["incident"]["id"]


def test_take_ownership_conflict_is_409_naming_the_owner(as_user, alice, dave, make_alert):
    alert = make_alert()
    services.take_alert_ownership(alert.pk, actor=alice)
    response = as_user(dave).post(f"/api/alerts/{alert.pk}/take-ownership/")
    assert response.status_code == 409
    assert response.data["error_code"] == "CONFLICT"
    assert response.data["owner"] == {"id": alice.pk, "username": "alice"}
    assert "alice" in response.data["detail"]


def test_viewer_take_ownership_is_403(as_user, bob, make_alert):
    alert = make_alert()
    assert as_user(bob).post(f"/api/alerts/{alert.pk}/take-ownership/").status_code == 403


def test_take_ownership_of_unknown_alert_is_404(as_user, alice):
    response = as_user(alice).post("/api/alerts/12345/take-ownership/")
    assert (response.status_code, response.data["error_code"]) == (404, "NOT_FOUND")


def test_alert_status_over_rest(as_user, alice, make_alert):
    alert = make_alert()
    client = as_user(alice)
    client.post(f"/api/alerts/{alert.pk}/take-ownership/")
    response = client.post(f"/api/alerts/{alert.pk}/status/", {"status": "resolved"}, format="json")
    assert response.status_code == 200, response.data
    assert (response.data["alert_id"], response.data["status"]) == (alert.pk, "resolved")
    bad = client.post(f"/api/alerts/{alert.pk}/status/", {"status": "escalated"}, format="json")
    assert bad.status_code == 409
    assert bad.data["allowed"] == ["in_progress"]
    missing = client.post(f"/api/alerts/{alert.pk}/status/", {}, format="json")
    assert (missing.status_code, missing.data["error_code"]) == (400, "INVALID_MESSAGE")
    unknown = client.post(f"/api/alerts/{alert.pk}/status/", {"status": "done"}, format="json")
    assert unknown.status_code == 400


def test_rest_status_change_broadcasts(
    as_user, alice, make_alert, django_capture_on_commit_callbacks
):
    alert = make_alert()
    client = as_user(alice)
    # Two requests, two transactions (a capture each).
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/api/alerts/{alert.pk}/take-ownership/")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/api/alerts/{alert.pk}/status/", {"status": "resolved"}, format="json")
    assert [e.event_type for e in events()] == [
        "incident_created",
        "alert_updated",
        "alert_updated",
    ]
    assert events()[-1].data["status"] == "resolved"


# --- incidents --------------------------------------------------------------------------


@pytest.fixture
def incident(alice, take):
    return take(alice, severity="high")[1]


def test_incident_list_and_detail(as_user, alice, incident):
    client = as_user(alice)
    listing = client.get("/api/incidents/")
    assert ids(listing) == [incident.pk]
    detail = client.get(f"/api/incidents/{incident.pk}/").data
    assert detail["reference"] == incident.reference
    assert detail["alert_count"] == 1


def test_users_without_see_all_see_only_owned_or_watched(as_user, make_user, incident):
    eve = grant(make_user("eve", role="viewer"), "add_incidentwatcher")
    client = as_user(eve)
    assert ids(client.get("/api/incidents/")) == []
    assert client.get(f"/api/incidents/{incident.pk}/").status_code == 404
    assert client.post(f"/api/incidents/{incident.pk}/watch/").data == {
        "incident_id": incident.pk,
        "watching": True,
    }
    assert ids(client.get("/api/incidents/")) == [incident.pk]
    assert client.get(f"/api/incidents/{incident.pk}/timeline/").status_code == 200
    client.delete(f"/api/incidents/{incident.pk}/watch/")
    assert ids(client.get("/api/incidents/")) == []


def test_viewer_sees_no_incidents(as_user, bob, incident):
    assert ids(as_user(bob).get("/api/incidents/")) == []


def test_incident_filters(as_user, alice, dave, take, incident):
    _, daves = take(dave, severity="low")
    services.update_incident_status(daves.pk, "investigating", actor=dave)
    client = as_user(alice)
    assert ids(client.get("/api/incidents/?status=investigating")) == [daves.pk]
    assert ids(client.get("/api/incidents/?severity=high")) == [incident.pk]
    assert ids(client.get("/api/incidents/?owner=me")) == [incident.pk]
    assert ids(client.get("/api/incidents/?owner=dave")) == [daves.pk]
    assert ids(client.get("/api/incidents/?owner=none")) == []
    assert ids(client.get(f"/api/incidents/?search={daves.reference}")) == [daves.pk]
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    assert ids(client.get("/api/incidents/", {"created_after": future})) == []
    assert set(ids(client.get("/api/incidents/", {"created_before": future}))) == {
        incident.pk,
        daves.pk,
    }
    assert ids(client.get("/api/incidents/?ordering=severity")) == [daves.pk, incident.pk]


@pytest.mark.parametrize("see_all", [True, False])
def test_incident_list_query_count_does_not_grow(
    as_user, alice, make_user, take, see_all, django_assert_num_queries
):
    user = alice if see_all else grant(make_user("eve", role="viewer"), "add_incidentwatcher")
    for _ in range(4):
        _, incident = take(alice)
        services.watch_incident(incident.pk, actor=user)
    client = as_user(user)
    # user + permissions (2) + count + page (owner, creator joined) + alert ids
    with django_assert_num_queries(6):
        response = client.get("/api/incidents/")
    assert len(response.data["results"]) == 4


def test_incident_status_over_rest(as_user, alice, incident):
    client = as_user(alice)
    response = client.post(
        f"/api/incidents/{incident.pk}/status/", {"status": "contained"}, format="json"
    )
    assert response.status_code == 200, response.data
    assert response.data["status"] == "contained" and response.data["contained_at"]
    bad = client.post(f"/api/incidents/{incident.pk}/status/", {"status": "open"}, format="json")
    assert (bad.status_code, bad.data["error_code"]) == (409, "CONFLICT")


def test_incident_patch(as_user, alice, carol, dave, incident):
    response = as_user(alice).patch(
        f"/api/incidents/{incident.pk}/", {"title": "Bastion brute force"}, format="json"
    )
    assert response.status_code == 200 and response.data["title"] == "Bastion brute force"
    refused = as_user(alice).patch(
        f"/api/incidents/{incident.pk}/", {"owner": dave.pk}, format="json"
    )
    assert refused.status_code == 403
    handed = as_user(carol).patch(
        f"/api/incidents/{incident.pk}/", {"owner": dave.pk}, format="json"
    )
    assert handed.data["owner"]["username"] == "dave"


def test_incident_put_is_not_allowed(as_user, alice, incident):
    assert (
        as_user(alice).put(f"/api/incidents/{incident.pk}/", {}, format="json").status_code == 405
    )


def test_incident_comments(as_user, alice, bob, incident, django_assert_num_queries):
    client = as_user(alice)
    created = client.post(
        f"/api/incidents/{incident.pk}/comments/", {"body": "Blocked"}, format="json"
    )
    assert created.status_code == 201
    assert created.data["author"]["username"] == "alice"
    client.post(f"/api/incidents/{incident.pk}/comments/", {"body": "Rotated keys"}, format="json")
    with django_assert_num_queries(6):  # user, perms (2), incident, count, page with authors
        listing = client.get(f"/api/incidents/{incident.pk}/comments/")
    assert [c["body"] for c in listing.data["results"]] == ["Blocked", "Rotated keys"]
    empty = client.post(f"/api/incidents/{incident.pk}/comments/", {"body": " "}, format="json")
    assert empty.status_code == 400
    assert as_user(bob).get(f"/api/incidents/{incident.pk}/comments/").status_code == 404


def test_incident_timeline(as_user, alice, incident):
    client = as_user(alice)
    client.post(f"/api/incidents/{incident.pk}/status/", {"status": "investigating"}, format="json")
    timeline = client.get(f"/api/incidents/{incident.pk}/timeline/").data["results"]
    assert [e["kind"] for e in timeline] == ["created", "alert_added", "status_changed"]
    assert timeline[-1]["actor"]["username"] == "alice"
    assert (timeline[-1]["old_value"], timeline[-1]["new_value"]) == ("new", "investigating")


def test_openapi_schema_includes_the_routes(as_user, carol):
    response = as_user(carol).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"] if hasattr(response, "json") else response.data["paths"]
    assert "/api/alerts/{id}/take-ownership/" in paths
    assert "/api/incidents/{id}/comments/" in paths
