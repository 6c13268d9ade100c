"""The hub's HTTP endpoints: publish, /ws/info, /realtime/status, /metrics, disconnect."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission

from realtime.models import Event
from threatlens.audit.models import AuditLog

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def publisher(make_user):
    user = make_user("integration")
    user.user_permissions.add(Permission.objects.get(codename="publish_event"))
    return user


def test_admin_publishes_an_event(api_client, carol):
    api_client.force_authenticate(carol)
    response = api_client.post(
        "/api/realtime/publish/",
        {
            "event_type": "security_event",
            "data": {"severity": 9},
            "priority": 9,
        },
        format="json",
    )
    assert response.status_code == 201
    event = Event.objects.get(pk=response.json()["message_id"])
    assert (event.event_type, event.priority, event.data) == ("security_event", 9, {"severity": 9})


def test_publisher_permission_allows_integrations(api_client, publisher):
    api_client.force_authenticate(publisher)
    response = api_client.post(
        "/api/realtime/publish/",
        {
            "event_type": "health_update",
            "data": {"component": "system"},
        },
        format="json",
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "body, field",
    [
        ({"event_type": "nope", "data": {}}, "event_type"),
        ({"event_type": "security_event", "data": []}, "data"),
        ({"event_type": "security_event", "data": {}, "priority": 11}, "priority"),
        ({"event_type": "security_event", "data": {}, "priority": "high"}, "priority"),
        ({"event_type": "zone_created", "data": {}}, "recipients"),
        ({"event_type": "security_event", "data": {}, "recipients": {"users": [1]}}, "recipients"),
        ({"data": {}}, "event_type"),
    ],
)
def test_bad_publish_is_a_400_with_a_reason_and_stores_nothing(api_client, carol, body, field):
    api_client.force_authenticate(carol)
    stored = Event.objects.count()
    response = api_client.post("/api/realtime/publish/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Event.objects.count() == stored


def test_analyst_may_not_publish(api_client, alice):
    api_client.force_authenticate(alice)
    response = api_client.post(
        "/api/realtime/publish/", {"event_type": "security_event", "data": {}}, format="json"
    )
    assert response.status_code == 403


async def test_ws_info_lists_live_connections_for_admins(ws, alice, carol, token_for):
    from django.test import AsyncClient

    client = await ws("/ws/info-test", token=token_for(alice))
    await client.receive()
    http = AsyncClient()
    response = await http.get("/ws/info", headers={"authorization": f"Bearer {token_for(carol)}"})
    assert response.status_code == 200
    info = response.json()
    assert info["totals"]["connections"] == 1
    assert info["connections"][0]["client_id"] == "info-test"
    assert info["connections"][0]["user"] == "alice"
    assert info["limits"]["max_connections"] == 100
    forbidden = await http.get("/ws/info", headers={"authorization": f"Bearer {token_for(alice)}"})
    assert forbidden.status_code == 403


async def test_realtime_status_needs_no_login_and_shows_no_user_data(ws, alice, token_for):
    from django.test import AsyncClient

    client = await ws("/ws", token=token_for(alice))
    await client.receive()
    response = await AsyncClient().get("/realtime/status")
    assert response.status_code == 200
    body = response.json()
    assert body["realtime"]["connections"] == 1
    assert "queued_messages" in body["realtime"]
    assert {"database", "channel_layer"} <= set(body["components"])
    assert "alice" not in response.content.decode()


async def test_metrics_are_prometheus_text_for_admins(ws, alice, carol, token_for):
    from django.test import AsyncClient

    client = await ws("/ws", token=token_for(alice))
    await client.receive()
    response = await AsyncClient().get(
        "/metrics", headers={"authorization": f"Bearer {token_for(carol)}"}
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "threatlens_ws_connections 1" in text
    assert 'threatlens_ws_delivery_latency_seconds_bucket{le="+Inf"}' in text
    anonymous = await AsyncClient().get("/metrics")
    assert anonymous.status_code in (401, 403)


async def test_rest_disconnect_closes_the_users_sockets(ws, alice, carol, token_for):
    from django.test import AsyncClient

    client = await ws("/ws", token=token_for(alice))
    await client.receive()
    response = await AsyncClient().post(
        "/api/realtime/connections/disconnect/",
        {"user_id": alice.pk},
        content_type="application/json",
        headers={"authorization": f"Bearer {token_for(carol)}"},
    )
    assert response.status_code == 202
    error, code = await client.receive_close()
    assert code == 1008
    assert await sync_to_async(
        AuditLog.objects.filter(action="realtime.disconnect_user", target_id=str(alice.pk)).exists
    )()
