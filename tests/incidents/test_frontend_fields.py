"""What the incident-response frontend keys on: `incident_id` (the reference), alerts'
`assigned_analyst_id`, and `new` as the first incident status (`open` still accepted),
in REST and on every socket (docs/migrating.md)."""

import importlib

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps

from incidents import services
from incidents.models import Incident

pytestmark = pytest.mark.django_db(transaction=True)


async def frames_of(client, *types):
    """The first frame of each of these types, whatever order they come in."""
    frames = {}
    while set(types) - set(frames):
        frame = await client.receive(timeout=5)
        if frame["type"] in types:
            frames.setdefault(frame["type"], frame)
    return frames


@pytest.fixture
def as_user(api_client):
    def login(user):
        api_client.force_authenticate(user)
        return api_client

    return login


def test_an_incident_created_by_a_take_has_incident_id_and_status_new(as_user, alice, make_alert):
    alert = make_alert()
    taken = as_user(alice).post(f"/api/alerts/{alert.pk}/take-ownership/").json()
    incident = taken["incident"]
    assert incident["incident_id"] == incident["reference"]
    assert incident["incident_id"].startswith("INC-")
    assert incident["status"] == "new"
    assert taken["alert"]["assigned_analyst_id"] == alice.pk

    listed = as_user(alice).get("/api/incidents/").json()["results"]
    assert [(i["incident_id"], i["status"]) for i in listed] == [(incident["reference"], "new")]


def test_unassigned_alerts_have_a_null_assigned_analyst_id(as_user, alice, make_alert):
    alert = make_alert()
    body = as_user(alice).get(f"/api/alerts/{alert.pk}/").json()
    assert "assigned_analyst_id" in body and body["assigned_analyst_id"] is None


def test_open_is_accepted_as_the_old_name_of_new(as_user, alice, take):
    _, incident = take(alice)
    client = as_user(alice)
    assert client.get("/api/incidents/?status=open").json()["count"] == 1
    assert client.get("/api/incidents/?status=new").json()["count"] == 1
    client.post(f"/api/incidents/{incident.pk}/status/", {"status": "investigating"})
    assert client.get("/api/incidents/?status=open").json()["count"] == 0
    bad = client.post(f"/api/incidents/{incident.pk}/status/", {"status": "opened"}, format="json")
    assert (bad.status_code, bad.json()["error_code"]) == (400, "INVALID_MESSAGE")


def test_the_data_migration_renames_open_incidents(alice, take):
    _, incident = take(alice)
    Incident.objects.filter(pk=incident.pk).update(status="open")
    migration = importlib.import_module(
        "incidents.migrations.0003_incident_status_new_replaces_open"
    )
    migration.open_to_new(apps, None)
    incident.refresh_from_db()
    assert incident.status == "new"


async def test_the_incident_socket_answers_a_take_with_incident_id_and_status_new(
    ws, alice, token_for, make_alert
):
    alert = await sync_to_async(make_alert)()
    client = await ws("/ws/incidents", token=token_for(alice))
    await client.receive_type("initial_data")
    await client.send({"type": "take_alert_ownership", "data": {"alert_id": alert.pk}})
    # The incident_created event may come before or after the reply.
    frames = await frames_of(client, "alert_ownership_taken", "incident_created")
    incident = frames["alert_ownership_taken"]["data"]["incident"]
    assert incident["incident_id"] == incident["reference"] and incident["status"] == "new"
    assert frames["alert_ownership_taken"]["data"]["alert"]["assigned_analyst_id"] == alice.pk
    assert frames["incident_created"]["data"]["incident_id"] == incident["reference"]


async def test_dns_frontend_sockets_carry_incident_id_too(ws, alice, token_for, make_alert):
    alert = await sync_to_async(make_alert)()
    client = await ws("/api/websocket/ws", token=token_for(alice))
    await client.receive_type("connection_established")
    await client.send({"type": "subscribe", "event_types": ["incident_created", "alert_updated"]})
    await client.receive_type("subscription_updated")
    await sync_to_async(services.take_alert_ownership)(alert.pk, actor=alice)
    frames = await frames_of(client, "incident_created", "alert_updated")
    assert frames["incident_created"]["data"]["incident_id"].startswith("INC-")
    assert frames["incident_created"]["data"]["status"] == "new"
    assert frames["alert_updated"]["data"]["assigned_analyst_id"] == alice.pk


async def test_the_incident_socket_takes_the_reference_as_incident_id(ws, alice, token_for, take):
    _, incident = await sync_to_async(take)(alice)
    client = await ws("/ws/incidents", token=token_for(alice))
    await client.receive_type("initial_data")
    await client.send({"type": "get_incident_details", "data": {"incident_id": incident.reference}})
    details = await client.receive_type("incident_details")
    assert details["data"]["id"] == incident.pk
    await client.send({"type": "watch_incident", "data": {"incident_id": incident.reference}})
    assert (await client.receive_type("incident_watched"))["data"]["watching"] is True
    await client.send({"type": "get_incident_details", "data": {"incident_id": "INC-1999-0001"}})
    assert (await client.receive_type("error"))["error_code"] == "NOT_FOUND"
