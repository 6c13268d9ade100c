"""The pipeline seen over sockets: an upload's stages, and the alert it raises on
/ws/incidents."""

import pytest
from channels.db import database_sync_to_async

from incidents.models import Alert
from tests.ingest.helpers import brute_force, cron_line, text

pytestmark = pytest.mark.django_db(transaction=True)


async def hub_socket(ws, user, token_for, *event_types):
    client = await ws("/ws", token=token_for(user))
    assert (await client.receive_type("connection_established"))["type"]
    if event_types:
        await client.send({"type": "subscribe", "data": {"event_types": list(event_types)}})
        reply = await client.receive_type("subscription_updated")
        assert set(event_types) <= set(reply["data"]["subscriptions"])
    return client


async def test_each_stage_of_an_upload_reaches_a_subscriber(ws, aupload, alice, token_for):
    client = await hub_socket(ws, alice, token_for, "processing_update")

    response = await aupload(alice, source="auth.log", content=text([cron_line(0)]))
    assert response.status_code == 202
    raw_log_id = response.json()["id"]

    frames = [await client.receive_event("processing_update") for _ in range(4)]
    assert [(f["data"]["stage"], f["data"]["status"]) for f in frames] == [
        ("received", "completed"),
        ("parsing", "started"),
        ("analysis", "in_progress"),
        ("completed", "completed"),
    ]
    for frame in frames:
        data = frame["data"]
        assert data["raw_log_id"] == raw_log_id
        assert 0.0 <= data["progress"] <= 1.0
        assert {"events_created", "processing_time", "source", "category"} <= set(data)
        assert frame["message_id"]
    assert frames[-1]["data"]["progress"] == 1.0


async def test_a_viewer_is_refused_processing_and_security_events(
    ws, aupload, alice, bob, token_for
):
    """The same rule as REST's /api/events/ and /api/logs/ (READ_PIPELINE_DATA)."""
    client = await hub_socket(ws, bob, token_for)
    await client.send(
        {"type": "subscribe", "data": {"event_types": ["processing_update", "security_event"]}}
    )
    reply = await client.receive_type("subscription_updated")
    refused = {item["event_type"]: item["error_code"] for item in reply["data"]["refused"]}
    assert refused == {
        "processing_update": "PERMISSION_DENIED",
        "security_event": "PERMISSION_DENIED",
    }

    assert (await client.receive_type("error"))["error_code"] == "PERMISSION_DENIED"

    await aupload(alice, source="auth.log", content=text(brute_force(10)))
    assert await client.receive_nothing()


async def test_an_ingest_that_raises_an_alert_shows_it_on_the_incidents_socket(
    ws, aupload, alice, token_for
):
    incidents = await ws("/ws/incidents", token=token_for(alice))
    await incidents.receive_type("initial_data")
    hub = await hub_socket(ws, alice, token_for)  # analysts' defaults

    await aupload(alice, source="auth.log", content=text(brute_force(10)))

    alert = await database_sync_to_async(Alert.objects.get)()
    frame = await incidents.receive_event("new_alert")
    assert frame["type"] == "new_alert"
    assert frame["data"]["id"] == alert.pk
    assert frame["data"]["correlation_key"] == "ssh_bruteforce_ip:203.0.113.45"
    assert frame["priority"] == 8

    event = await hub.receive_event("security_event")
    assert event["type"] == "security_event" and event["priority"] == 8
    unified = await hub.receive_event("security_alert")
    assert unified["type"] == "event" and unified["priority"] == "high"
    assert unified["data"]["alert_id"] == str(alert.pk)
