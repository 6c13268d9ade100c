"""Blocking a domain from an incident: an RPZ rule with a reason, on the timeline, undoable."""

import pytest

from dns import services as dns_services
from dns.models import RpzRule
from incidents.models import TimelineKind

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_user(api_client, token_for):
    def login(user):
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
        return api_client

    return login


def test_an_admin_blocks_a_domain_from_an_incident_and_undoes_it(as_user, alice, carol, take):
    _alert, incident = take(alice)
    client = as_user(carol)
    body = {"domain": "Evil-C2.example.", "action": "nxdomain", "reason": "Beacon seen on ws-17"}
    created = client.post(f"/api/incidents/{incident.pk}/blocks/", body, format="json")
    assert created.status_code == 201, created.data
    rule = RpzRule.objects.get(pk=created.data["id"])
    assert rule.domain == "evil-c2.example" and rule.source == f"incident:{incident.reference}"
    entry = incident.timeline.get(kind=TimelineKind.RESPONSE)
    assert "Blocked evil-c2.example" in entry.message and "Beacon seen on ws-17" in entry.message
    listed = client.get(f"/api/incidents/{incident.pk}/blocks/").data
    assert [r["domain"] for r in listed] == ["evil-c2.example"]
    undone = client.delete(f"/api/incidents/{incident.pk}/blocks/{rule.pk}/")
    assert undone.status_code == 204
    assert not RpzRule.objects.filter(pk=rule.pk).exists()
    assert incident.timeline.filter(message__startswith="Unblocked evil-c2.example").exists()


def test_blocking_needs_the_dns_permission(as_user, alice, take):
    _alert, incident = take(alice)
    response = as_user(alice).post(
        f"/api/incidents/{incident.pk}/blocks/",
        {"domain": "evil.example", "reason": "x"},
        format="json",
    )
    assert response.status_code == 403
    assert response.data["error_code"] == "PERMISSION_DENIED"
    assert not RpzRule.objects.exists()
    assert not incident.timeline.filter(kind=TimelineKind.RESPONSE).exists()


@pytest.mark.parametrize(
    "body",
    [
        {"domain": "evil.example"},
        {"reason": "x"},
        {"domain": "not a domain!", "reason": "x"},
        {"domain": "evil.example", "reason": "x", "action": "explode"},
    ],
)
def test_bad_blocks_are_refused_with_an_error_code(as_user, alice, carol, take, body):
    _alert, incident = take(alice)
    response = as_user(carol).post(f"/api/incidents/{incident.pk}/blocks/", body, format="json")
    assert response.status_code == 400, response.data
    assert response.data["error_code"] == "INVALID_MESSAGE"
    assert not RpzRule.objects.exists()


def test_an_incident_undoes_only_its_own_rules(as_user, alice, carol, take):
    _a, incident = take(alice)
    other = dns_services.create_rpz_rule(None, {"domain": "other.example"})
    response = as_user(carol).delete(f"/api/incidents/{incident.pk}/blocks/{other.pk}/")
    assert response.status_code == 404
    assert RpzRule.objects.filter(pk=other.pk).exists()
