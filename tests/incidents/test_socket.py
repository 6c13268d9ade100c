"""`/ws/incidents` (incidents-ws.md) through the real ASGI application."""

import pytest
from asgiref.sync import sync_to_async

from incidents import services
from incidents.models import Alert

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def incidents_ws(ws, token_for):
    async def open_for(user):
        client = await ws("/ws/incidents", token=token_for(user))
        greeting = await client.receive()
        assert greeting["type"] == "initial_data", greeting
        return client, greeting

    return open_for


async def test_initial_data_on_connect(incidents_ws, alice, make_alert):
    alert = await sync_to_async(make_alert)()
    client, greeting = await incidents_ws(alice)
    data = greeting["data"]
    assert data["user"]["username"] == "alice"
    assert [a["id"] for a in data["recent_alerts"]] == [alert.pk]
    assert data["recent_incidents"] == []
    assert data["owned_incidents"] == []


async def test_ping_pong(incidents_ws, alice):
    client, _ = await incidents_ws(alice)
    await client.send({"type": "ping"})
    assert (await client.receive())["type"] == "pong"


async def test_get_recent_alerts_and_owned_incidents(incidents_ws, alice, take, make_alert):
    await sync_to_async(make_alert)()
    _, incident = await sync_to_async(take)(alice)
    client, _ = await incidents_ws(alice)
    await client.send({"type": "get_recent_alerts"})
    reply = await client.receive()
    assert reply["type"] == "recent_alerts"
    assert len(reply["data"]["alerts"]) == 2
    await client.send({"type": "get_owned_incidents"})
    reply = await client.receive()
    assert reply["type"] == "owned_incidents"
    assert [i["id"] for i in reply["data"]["incidents"]] == [incident.pk]


@pytest.mark.parametrize("message_type", ["take_alert_ownership", "take_ownership"])
async def test_take_ownership_answers_the_new_incident(
    incidents_ws, alice, make_alert, message_type
):
    alert = await sync_to_async(make_alert)()
    client, _ = await incidents_ws(alice)
    await client.send({"type": message_type, "data": {"alert_id": alert.pk}})
    reply = await client.receive_type("alert_ownership_taken")
    assert reply["data"]["alert_id"] == alert.pk
    assert reply["data"]["incident"]["title"]


async def test_taking_a_correlated_alert_joins_the_open_incident(
    incidents_ws, alice, take, make_alert
):
    await sync_to_async(take)(alice, correlation_key="ssh:203.0.113.7")
    second = await sync_to_async(make_alert)(correlation_key="ssh:203.0.113.7")
    client, _ = await incidents_ws(alice)
    await client.send({"type": "take_ownership", "data": {"alert_id": second.pk}})
    reply = await client.receive_type("alert_ownership_taken")
    assert reply["data"]["incident"] is None


async def test_conflict_names_the_owner(incidents_ws, alice, make_user, take):
    dave = await sync_to_async(make_user)("dave", role="analyst")
    alert, _ = await sync_to_async(take)(dave)
    client, _ = await incidents_ws(alice)
    await client.send({"type": "take_alert_ownership", "data": {"alert_id": alert.pk}})
    error = await client.receive_type("error")
    assert error["error_code"] == "CONFLICT"
    assert "dave" in error["data"]["message"]


async def test_update_alert_status(incidents_ws, alice, take):
    alert, _ = await sync_to_async(take)(alice)
    client, _ = await incidents_ws(alice)
    await client.send(
        {"type": "update_alert_status", "data": {"alert_id": alert.pk, "status": "resolved"}}
    )
    reply = await client.receive_type("alert_status_updated")
    assert (reply["data"]["alert_id"], reply["data"]["status"]) == (alert.pk, "resolved")


async def test_get_alert_details(incidents_ws, alice, make_alert):
    alert = await sync_to_async(make_alert)(title="SSH brute force")
    client, _ = await incidents_ws(alice)
    await client.send({"type": "get_alert_details", "data": {"alert_id": alert.pk}})
    reply = await client.receive()
    assert reply["type"] == "alert_details"
    assert reply["data"]["title"] == "SSH brute force"


@pytest.mark.parametrize(
    "message, code",
    [
        ({"type": "take_ownership"}, "INVALID_MESSAGE"),
        ({"type": "take_ownership", "data": {"alert_id": "abc"}}, "INVALID_MESSAGE"),
        ({"type": "take_ownership", "data": {"alert_id": 999999}}, "NOT_FOUND"),
        ({"type": "get_alert_details", "data": {}}, "INVALID_MESSAGE"),
        ({"type": "get_alert_details", "data": {"alert_id": 999999}}, "NOT_FOUND"),
        ({"type": "update_alert_status", "data": {"alert_id": 1}}, "INVALID_MESSAGE"),
        ({"type": "watch_incident", "data": {"incident_id": 424242}}, "NOT_FOUND"),
        ({"type": "fly_to_the_moon"}, "UNKNOWN_MESSAGE_TYPE"),
    ],
)
async def test_bad_requests_get_a_clear_error_and_the_socket_stays(
    incidents_ws, alice, message, code
):
    client, _ = await incidents_ws(alice)
    await client.send(message)
    error = await client.receive_type("error")
    assert error["error_code"] == code
    assert error["data"]["message"]
    await client.send({"type": "ping"})
    assert (await client.receive())["type"] == "pong"


async def test_wrong_status_is_an_error_that_changes_nothing(incidents_ws, alice, take):
    alert, _ = await sync_to_async(take)(alice)
    client, _ = await incidents_ws(alice)
    await client.send(
        {"type": "update_alert_status", "data": {"alert_id": alert.pk, "status": "exploded"}}
    )
    assert (await client.receive_type("error"))["error_code"] == "INVALID_MESSAGE"
    assert (await sync_to_async(Alert.objects.get)(pk=alert.pk)).status == "in_progress"


async def test_viewer_cannot_take_ownership(incidents_ws, bob, make_alert):
    alert = await sync_to_async(make_alert)()
    client, greeting = await incidents_ws(bob)
    await client.send({"type": "take_ownership", "data": {"alert_id": alert.pk}})
    assert (await client.receive_type("error"))["error_code"] == "PERMISSION_DENIED"


async def test_rest_status_change_reaches_a_connected_socket(
    incidents_ws, alice, take, api_client, token_for
):
    alert, _ = await sync_to_async(take)(alice)
    client, _ = await incidents_ws(alice)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(alice)}")
    response = await sync_to_async(api_client.post)(
        f"/api/alerts/{alert.pk}/status/", {"status": "resolved"}, format="json"
    )
    assert response.status_code == 200
    update = await client.receive_event("alert_updated")
    assert (update["data"]["id"], update["data"]["status"]) == (alert.pk, "resolved")


async def test_new_alert_from_any_path_is_pushed(incidents_ws, alice):
    client, _ = await incidents_ws(alice)
    await sync_to_async(services.ingest_alert)(
        {"title": "Port scan", "severity": "medium", "source": "ids"}, actor=None
    )
    frame = await client.receive_event("new_alert")
    assert frame["data"]["title"] == "Port scan"


async def test_watcher_gets_the_incidents_updates(incidents_ws, alice, make_user, take):
    dave = await sync_to_async(make_user)("dave", role="analyst")
    _, incident = await sync_to_async(take)(dave)
    client, _ = await incidents_ws(alice)
    await client.send({"type": "watch_incident", "data": {"incident_id": incident.pk}})
    assert (await client.receive_type("incident_watched"))["data"]["incident_id"] == incident.pk
    await sync_to_async(services.update_incident_status)(incident.pk, "investigating", actor=dave)
    update = await client.receive_event("incident_updated")
    assert update["data"]["status"] == "investigating"


async def test_rolled_back_change_publishes_nothing(incidents_ws, alice, make_alert):
    from django.db import transaction

    alert = await sync_to_async(make_alert)()
    client, _ = await incidents_ws(alice)

    def change_then_fail():
        with transaction.atomic():
            services.take_alert_ownership(alert.pk, actor=alice)
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await sync_to_async(change_then_fail)()
    assert await client.receive_nothing(0.5)


async def test_first_message_auth_works_here_too(ws, alice, token_for):
    client = await ws("/ws/incidents")
    await client.send({"type": "auth", "data": {"token": token_for(alice)}})
    assert (await client.receive())["type"] == "auth_ok"
    assert (await client.receive())["type"] == "initial_data"


async def test_no_credentials_fail_with_1008(ws):
    client = await ws("/ws/incidents")
    await client.send({"type": "get_recent_alerts"})
    error, code = await client.receive_close()
    assert (error["error_code"], code) == ("AUTH_FAILED", 1008)
