"""DNS queries that hit a block an incident made: a `threat_detected` timeline entry on the
incident, live to who may see it, and the query linked to the incident (incidents.block_hits)."""

import pytest
from asgiref.sync import sync_to_async
from django.test import TestCase

from dns.models import RpzRule, ThreatFeed
from incidents import block_hits, response
from incidents.ingest import receive_raw_log
from incidents.models import SecurityEvent, TimelineKind
from incidents.processing import process_raw_log
from realtime.models import Event
from tests.ingest.helpers import bind_query, text
from threatlens.writeguard import service_writes

pytestmark = pytest.mark.django_db(transaction=True)


def ingest_bind(*lines):
    with TestCase.captureOnCommitCallbacks(execute=True):
        raw_log = receive_raw_log(source="bind", content=text(list(lines)), actor=None)
        return process_raw_log(raw_log.pk)


@pytest.fixture
def blocked(alice, carol, take):
    """alice's incident, from which carol (admin) blocked evil-c2.example."""
    _alert, incident = take(alice)
    with TestCase.captureOnCommitCallbacks(execute=True):
        rule = response.block_domain(
            incident.pk,
            {"domain": "evil-c2.example", "action": "nxdomain", "reason": "Beacon on ws-17"},
            actor=carol,
        )
    Event.objects.all().delete()
    return incident, rule


def test_a_query_for_a_blocked_domain_is_recorded_on_the_incident_and_linked_to_it(
    blocked, api_client, token_for, alice
):
    incident, rule = blocked
    ingest_bind(bind_query(0, domain="evil-c2.example", client="10.20.2.57", qtype="TXT"))

    [entry] = incident.timeline.filter(kind=TimelineKind.THREAT_DETECTED)
    assert entry.actor is None
    assert entry.message == (
        f"10.20.2.57 queried evil-c2.example (TXT), blocked by RPZ rule #{rule.pk} (nxdomain)"
    )
    assert entry.new_value["rule"] == rule.pk and entry.new_value["client_ip"] == "10.20.2.57"

    link = {"id": incident.pk, "reference": incident.reference, "rpz_rule_id": rule.pk}
    threat = Event.objects.get(event_type="threat_detected").data
    assert (threat["incident_id"], threat["incident_reference"]) == (
        incident.pk,
        incident.reference,
    )
    assert threat["domain"] == "evil-c2.example" and threat["feed"] == "RPZ"
    published = Event.objects.get(event_type="security_event").data
    assert published["blocked_by_incident"] == link
    # The incident's audience is told (its page reloads its timeline).
    assert Event.objects.filter(event_type="incident_updated", data__id=incident.pk).exists()

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(alice)}")
    [listed] = api_client.get("/api/events/?category=dns").data["results"]
    assert listed["blocked_by_incident"] == link
    event = SecurityEvent.objects.get()
    detail = api_client.get(f"/api/events/{event.event_id}/").data
    assert detail["blocked_by_incident"] == link
    assert detail == {**listed, "raw_line": detail["raw_line"], "details": detail["details"]}


def test_a_subdomain_hits_the_block_and_a_clients_repeats_make_one_entry(blocked):
    incident, rule = blocked
    RpzRule.objects.filter(pk=rule.pk).update(include_subdomains=True)
    ingest_bind(
        bind_query(0, domain="evil-c2.example", client="10.0.0.1"),
        bind_query(1, domain="evil-c2.example", client="10.0.0.1"),
        # The rule's cooldown is per client and listing: this repeat adds nothing.
        bind_query(2, domain="x.evil-c2.example", client="10.0.0.1"),
        bind_query(3, domain="x.evil-c2.example", client="10.0.0.2"),
    )
    messages = sorted(
        incident.timeline.filter(kind=TimelineKind.THREAT_DETECTED).values_list(
            "message", flat=True
        )
    )
    assert [m.split(",")[0] for m in messages] == [
        "10.0.0.1 queried evil-c2.example (A)",
        "10.0.0.2 queried x.evil-c2.example (A)",
    ]


def test_a_burst_of_clients_is_summarised_on_the_timeline(blocked):
    incident, _rule = blocked
    count = block_hits.MAX_ENTRIES_PER_INCIDENT + 5
    ingest_bind(
        *(bind_query(i, domain="evil-c2.example", client=f"10.0.1.{i}") for i in range(count))
    )
    entries = incident.timeline.filter(kind=TimelineKind.THREAT_DETECTED)
    assert entries.count() == block_hits.MAX_ENTRIES_PER_INCIDENT + 1
    assert entries.filter(message="5 more clients queried blocked domains in the same batch")
    # Every query is still linked.
    assert SecurityEvent.objects.count() == count
    assert all(e.details["listing"]["incident"]["id"] == incident.pk
               for e in SecurityEvent.objects.all())  # fmt: skip


def test_queries_hitting_other_rules_are_not_linked_to_any_incident(blocked):
    incident, _rule = blocked
    with service_writes():  # rows no service would write: set up directly
        RpzRule.objects.create(domain="manual.example", source="manual")
        # A feed entry whose source pretends to be an incident's is a feed entry.
        feed = ThreatFeed.objects.create(name="Feed", url="https://feed.example/list.txt")
        RpzRule.objects.create(
            domain="feed.example", feed=feed, source=f"incident:{incident.reference}"
        )
        # An incident's rule whose incident is gone links nothing.
        RpzRule.objects.create(domain="orphan.example", source="incident:INC-1999-0001")
    ingest_bind(
        bind_query(0, domain="manual.example"),
        bind_query(1, domain="feed.example"),
        bind_query(2, domain="orphan.example"),
        bind_query(3, domain="unlisted.example"),
    )
    assert SecurityEvent.objects.count() == 3
    assert not incident.timeline.filter(kind=TimelineKind.THREAT_DETECTED).exists()
    for event in SecurityEvent.objects.all():
        assert "incident" not in event.details["listing"]
    for data in Event.objects.filter(event_type="threat_detected").values_list("data", flat=True):
        assert "incident_id" not in data
    assert not Event.objects.filter(event_type="incident_updated").exists()


def test_an_undone_block_no_longer_reaches_the_incident(blocked, carol):
    incident, rule = blocked
    response.unblock_domain(incident.pk, rule.pk, actor=carol)
    ingest_bind(bind_query(0, domain="evil-c2.example"))
    assert not incident.timeline.filter(kind=TimelineKind.THREAT_DETECTED).exists()
    assert not SecurityEvent.objects.exists()


async def test_the_owner_sees_the_hit_live_and_a_user_who_may_not_see_the_incident_does_not(
    ws, token_for, alice, make_user, blocked
):
    incident, _rule = blocked
    eve = await sync_to_async(viewer_with_the_security_feed)(make_user)
    owner = await ws("/ws/incidents", token=token_for(alice))
    assert (await owner.receive())["type"] == "initial_data"
    other = await ws("/ws/incidents", token=token_for(eve))
    assert (await other.receive())["type"] == "initial_data"

    await sync_to_async(ingest_bind)(bind_query(0, domain="evil-c2.example"))

    update = await owner.receive_event("incident_updated", timeout=5)
    assert update["data"]["id"] == incident.pk
    # eve may get the alert the query raised, never alice's incident.
    assert await no_incident_update(other, incident.pk)


def viewer_with_the_security_feed(make_user):
    """eve: security events (receive_security) but not every incident (a viewer's role)."""
    from django.contrib.auth.models import Permission

    eve = make_user("eve", role="viewer")
    eve.user_permissions.add(Permission.objects.get(codename="receive_security"))
    return eve


async def no_incident_update(client, incident_id):
    """True when no incident_updated for this incident arrives (other frames are read;
    receive_nothing, unlike a timed-out receive, leaves the consumer running)."""
    while not await client.receive_nothing(1):
        frame = await client.receive()
        for event in frame["events"] if frame.get("type") == "batch" else [frame]:
            kind = event.get("type") or event.get("event_type")
            if kind == "incident_updated" and event["data"]["id"] == incident_id:
                return False
    return True


def test_a_rule_cannot_claim_an_incidents_block_over_rest(blocked, api_client, token_for, carol):
    incident, _rule = blocked
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(carol)}")
    spoof = {"domain": "spoof.example", "source": f"incident:{incident.reference}"}
    created = api_client.post("/api/dns/rpz/rules/", spoof, format="json")
    assert created.status_code == 400, created.data
    assert "source" in str(created.data)
    assert not RpzRule.objects.filter(domain="spoof.example").exists()

    with service_writes():
        other = RpzRule.objects.create(domain="other.example", source="manual")
    changed = api_client.patch(
        f"/api/dns/rpz/rules/{other.pk}/",
        {"source": f" Incident:{incident.reference}"},
        format="json",
    )
    assert changed.status_code == 400, changed.data
    assert RpzRule.objects.get(pk=other.pk).source == "manual"
    # Other sources stay free text.
    renamed = api_client.patch(
        f"/api/dns/rpz/rules/{other.pk}/", {"source": "soc-runbook"}, format="json"
    )
    assert renamed.status_code == 200, renamed.data
