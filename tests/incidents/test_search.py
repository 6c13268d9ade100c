"""GET /api/search/ and /api/pivot/: what matches, restricted to what the user may read."""

from datetime import timedelta

import pytest
from django.utils import timezone

from dns.models import Record, Zone, ZoneAccess
from incidents.models import SecurityEvent
from threatlens.writeguard import service_writes

pytestmark = pytest.mark.django_db
ATTACKER = "203.0.113.45"


@pytest.fixture
def as_user(api_client, token_for):
    def login(user):
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
        return api_client

    return login


def event(**fields):
    defaults = {
        "severity": 8,
        "category": "authentication",
        "source": "auth.log",
        "message": f"Failed password for root from {ATTACKER}",
        "timestamp": timezone.now() - timedelta(minutes=30),
        "src_ip": ATTACKER,
        "user": "root",
    }
    return SecurityEvent.objects.create(**(defaults | fields))


def test_search_finds_an_ip_in_alerts_incidents_and_events(as_user, alice, take, make_alert):
    alert, incident = take(alice, source_ip=ATTACKER, title="SSH brute force")
    make_alert(source_ip="198.51.100.1", title="Other")
    event()
    body = as_user(alice).get("/api/search/", {"q": ATTACKER}).json()
    assert [a["id"] for a in body["alerts"]] == [alert.pk]
    assert body["events"][0]["src_ip"] == ATTACKER
    found = as_user(alice).get("/api/search/", {"q": incident.reference}).json()
    assert [i["id"] for i in found["incidents"]] == [incident.pk]


def test_search_covers_only_the_zones_a_user_may_read(as_user, alice, carol):
    with service_writes():  # setup
        mine = Zone.objects.create(name="corp.example", zone_type="master", email="h@corp.example")
        other = Zone.objects.create(name="corp-secret.example", zone_type="master", email="h@x.ex")
        Record.objects.create(zone=other, name="vpn", record_type="A", value="192.0.2.7")
        ZoneAccess.objects.create(zone=mine, user=alice, can_change=False)
    body = as_user(alice).get("/api/search/", {"q": "corp"}).json()
    assert [z["name"] for z in body["zones"]] == ["corp.example"]
    assert as_user(alice).get("/api/search/", {"q": "192.0.2.7"}).json()["records"] == []
    records = as_user(carol).get("/api/search/", {"q": "192.0.2.7"}).json()["records"]
    assert records[0]["zone_name"] == "corp-secret.example"


def test_a_viewer_gets_no_group_they_may_not_read(as_user, bob, make_alert):
    make_alert(title="needle")
    body = as_user(bob).get("/api/search/", {"q": "needle"}).json()
    assert "incidents" in body  # viewers may read incidents they own or watch
    assert all(i["title"] != "needle" for i in body["incidents"])


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "x" * 201}])
def test_search_without_a_query_is_a_400(as_user, alice, params):
    response = as_user(alice).get("/api/search/", params)
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_MESSAGE"


def test_pivot_on_an_ip_counts_and_lists_everything_about_it(as_user, alice, take):
    alert, incident = take(alice, source_ip=ATTACKER)
    event()
    event(category="dns", message=f"query: evil.example from {ATTACKER}", user="")
    body = as_user(alice).get("/api/pivot/", {"type": "ip", "value": ATTACKER}).json()
    assert body["counts"] == {"events": 2, "dns_queries": 1, "alerts": 1, "incidents": 1}
    assert [i["id"] for i in body["incidents"]] == [incident.pk]
    assert [a["id"] for a in body["alerts"]] == [alert.pk]
    assert len(body["histogram"]) == 24 and sum(b["count"] for b in body["histogram"]) == 2
    assert body["first_seen"] and body["last_seen"]


@pytest.mark.parametrize(
    "params", [{"type": "ip", "value": "not-an-ip"}, {"type": "mac", "value": "x"}, {"type": "ip"}]
)
def test_pivot_refuses_bad_input_with_an_error_code(as_user, alice, params):
    response = as_user(alice).get("/api/pivot/", params)
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_MESSAGE"


def test_pivot_on_a_user(as_user, alice, make_alert):
    make_alert(affected_user="jdoe")
    event(user="jdoe", src_ip=None)
    body = as_user(alice).get("/api/pivot/", {"type": "user", "value": "jdoe"}).json()
    assert body["counts"]["alerts"] == 1 and body["counts"]["events"] == 1


def test_observables_say_in_how_many_other_incidents_they_were_seen(as_user, alice, dave, take):
    _a, first = take(alice, source_ip=ATTACKER, affected_user="root", correlation_key="a")
    take(alice, source_ip=ATTACKER, correlation_key="b")
    take(dave, source_ip=ATTACKER, correlation_key="c")
    body = as_user(alice).get(f"/api/incidents/{first.pk}/observables/").json()
    by_value = {(o["type"], o["value"]): o for o in body}
    assert by_value[("ip", ATTACKER)]["other_incidents"] == 2
    assert by_value[("user", "root")]["other_incidents"] == 0
    assert as_user(alice).get("/api/incidents/999999/observables/").status_code == 404


def test_a_viewer_does_not_see_the_observables_of_an_incident_they_may_not_see(
    as_user, alice, bob, take
):
    _a, incident = take(alice, source_ip=ATTACKER)
    response = as_user(bob).get(f"/api/incidents/{incident.pk}/observables/")
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


def test_search_and_pivot_cost_the_same_queries_for_one_match_or_many(
    as_user, alice, take, make_alert
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(path, params):
        client = as_user(alice)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path, params).status_code == 200
        return len(captured)

    take(alice, source_ip=ATTACKER, correlation_key="first")
    event()
    one = (
        queries("/api/search/", {"q": ATTACKER}),
        queries("/api/pivot/", {"type": "ip", "value": ATTACKER}),
    )
    for n in range(5):
        take(alice, source_ip=ATTACKER, correlation_key=f"more-{n}")
        event()
    many = (
        queries("/api/search/", {"q": ATTACKER}),
        queries("/api/pivot/", {"type": "ip", "value": ATTACKER}),
    )
    assert many == one


def test_sorting_by_risk_puts_alerts_without_a_score_last(as_user, alice, make_alert):
    unscored = make_alert(risk_score=None)
    low = make_alert(risk_score=10)
    high = make_alert(risk_score=90)
    response = as_user(alice).get("/api/alerts/", {"ordering": "-risk_score"})
    assert [a["id"] for a in response.json()["results"]] == [high.pk, low.pk, unscored.pk]


def test_a_viewer_finds_no_security_events_by_search_or_pivot(as_user, bob):
    event()
    event(category="dns", message=f"query evil.example from {ATTACKER}")
    found = as_user(bob).get("/api/search/", {"q": ATTACKER}).json()
    assert not found.get("events")
    pivot = as_user(bob).get("/api/pivot/", {"type": "ip", "value": ATTACKER}).json()
    assert pivot["events"] == [] and pivot["dns_queries"] == []
    assert pivot["counts"].get("events", 0) == 0
