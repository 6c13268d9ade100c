"""Every client message of threatlens-ws.md and unified-ws.md, and bad input."""

import pytest

from tests.sockets import eventually
from threatlens.audit.models import AuditLog

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def alice_ws(ws, alice, token_for):
    client = await ws("/ws/alice-tab", token=token_for(alice))
    assert (await client.receive())["type"] == "connection_established"
    return client


async def test_ping_gets_pong_with_the_request_id(alice_ws):
    await alice_ws.send({"type": "ping", "data": {}, "id": "p-1"})
    pong = await alice_ws.receive()
    assert pong["type"] == "pong"
    assert pong["id"] == "p-1"
    assert pong["data"]["client_id"] == "alice-tab"


async def test_a_message_does_not_wait_for_the_database_thread(ws, alice, token_for, monkeypatch):
    """Channels' own dispatch would first close stale database connections in the
    database thread, for every message; database calls here do that themselves."""
    import channels.consumer

    hops = []

    async def close_old_connections():
        hops.append(1)

    from realtime import servers

    if not servers.enabled("channels_frames"):
        pytest.skip("the channels_frames fast path is off: Channels' own dispatch runs")
    monkeypatch.setattr(channels.consumer, "aclose_old_connections", close_old_connections)
    client = await ws("/ws/alice-tab", token=token_for(alice))
    assert (await client.receive())["type"] == "connection_established"
    await client.send({"type": "ping", "id": "p-2"})
    assert (await client.receive())["type"] == "pong"
    assert hops == []


async def test_raw_text_ping_gets_raw_text_pong(alice_ws):
    await alice_ws.send_text("ping")
    assert await alice_ws.receive_raw() == "pong"


async def test_client_pong_is_accepted_silently(alice_ws):
    await alice_ws.send({"type": "pong", "timestamp": "2024-01-15T10:30:00Z"})
    assert await alice_ws.receive_nothing()


async def test_server_pings_on_its_interval(ws, alice, token_for, settings):
    settings.REALTIME = {**settings.REALTIME, "PING_INTERVAL": 0.1}
    client = await ws("/ws", token=token_for(alice))
    await client.receive_type("connection_established")
    ping = await client.receive_type("ping")
    assert ping["timestamp"]


async def test_subscribe_adds_and_replace_existing_replaces(alice_ws):
    await alice_ws.send({"type": "subscribe", "data": {"event_types": ["processing_update"]}})
    reply = await alice_ws.receive()
    assert reply["type"] == "subscription_updated"
    assert reply["data"]["added"] == ["processing_update"]
    assert "security_event" in reply["subscriptions"]
    assert reply["subscriptions"] == reply["data"]["subscriptions"]

    await alice_ws.send(
        {
            "type": "subscribe",
            "data": {"event_types": ["security_event", "system_status"], "replace_existing": True},
        }
    )
    reply = await alice_ws.receive()
    assert reply["data"]["subscriptions"] == ["security_event", "system_status"]


async def test_unknown_and_forbidden_types_are_refused_by_name_while_valid_apply(
    ws, bob, token_for
):
    client = await ws("/ws", token=token_for(bob))
    await client.receive()
    await client.send(
        {
            "type": "subscribe",
            "data": {"event_types": ["zone_created", "no_such_event", "security_alert"]},
            "id": 7,
        }
    )
    reply = await client.receive()
    assert reply["id"] == 7
    assert "zone_created" in reply["data"]["subscriptions"]
    refused = {item["event_type"]: item["error_code"] for item in reply["data"]["refused"]}
    assert refused == {
        "no_such_event": "SUBSCRIPTION_FAILED",
        "security_alert": "PERMISSION_DENIED",
    }
    first, second = await client.receive(), await client.receive()
    assert first["error_code"] == "SUBSCRIPTION_FAILED"
    assert first["details"] == {"event_types": ["no_such_event"]}
    assert second["error_code"] == "PERMISSION_DENIED"


async def test_subscribe_events_and_unsubscribe_events_are_aliases(alice_ws):
    await alice_ws.send({"type": "subscribe_events", "data": {"event_types": ["system_status"]}})
    assert "system_status" in (await alice_ws.receive())["subscriptions"]
    await alice_ws.send({"type": "unsubscribe_events", "data": {"event_types": ["system_status"]}})
    reply = await alice_ws.receive()
    assert reply["data"]["removed"] == ["system_status"]
    assert "system_status" not in reply["subscriptions"]


async def test_subscribe_without_event_types_is_invalid(alice_ws):
    await alice_ws.send({"type": "subscribe", "data": {}})
    error = await alice_ws.receive()
    assert error["error_code"] == "INVALID_MESSAGE"
    assert error["data"]["error"] == "Invalid subscription request: missing event_types"


async def test_get_subscriptions_answers_current_and_default(alice_ws):
    await alice_ws.send({"type": "unsubscribe", "data": {"event_types": ["system_metrics"]}})
    await alice_ws.receive()
    await alice_ws.send({"type": "get_subscriptions"})
    reply = await alice_ws.receive()
    assert reply["type"] == "response"
    assert "system_metrics" not in reply["data"]["subscriptions"]
    assert "system_metrics" in reply["data"]["default_subscriptions"]


async def test_set_filter_answers_the_whole_filter_and_clear_filter_removes_it(alice_ws):
    await alice_ws.send({"type": "set_filter", "data": {"min_priority": 7}})
    reply = await alice_ws.receive()
    assert reply["type"] == "filter_updated"
    assert reply["data"]["action"] == "set"
    assert reply["data"]["filter"] == {
        "event_types": [],
        "categories": [],
        "sources": [],
        "min_priority": 7,
        "max_priority": 10,
    }
    await alice_ws.send({"type": "clear_filter", "data": {}})
    reply = await alice_ws.receive()
    assert reply["data"] == {"filter": None, "action": "cleared"}


@pytest.mark.parametrize(
    "data",
    [
        {"min_priority": 0},
        {"max_priority": 11},
        {"min_priority": "high"},
        {"min_priority": 8, "max_priority": 3},
        {"categories": "authentication"},
        {"sources": [1, 2]},
        {"event_types": ["nope"]},
    ],
)
async def test_bad_filters_are_invalid_and_change_nothing(alice_ws, data):
    await alice_ws.send({"type": "set_filter", "data": {"min_priority": 5}})
    await alice_ws.receive()
    await alice_ws.send({"type": "set_filter", "data": data})
    assert (await alice_ws.receive())["error_code"] == "INVALID_MESSAGE"
    await alice_ws.send({"type": "get_status"})
    status = await alice_ws.receive()
    assert status["data"]["client_info"]["filter"]["min_priority"] == 5


async def test_get_status_describes_the_client_and_server(alice_ws):
    await alice_ws.send({"type": "get_status", "data": {}})
    reply = await alice_ws.receive()
    assert reply["type"] == "status_response"
    assert reply["data"]["client_info"]["client_id"] == "alice-tab"
    assert reply["data"]["server"]["process_connections"] == 1
    assert reply["data"]["server_time"]


async def test_get_stats_answers_the_connection_counters(alice_ws):
    await alice_ws.send({"type": "ping"})
    await alice_ws.receive()
    await alice_ws.send({"type": "get_stats"})
    reply = await alice_ws.receive()
    assert reply["type"] == "response"
    stats = reply["data"]
    assert stats["connection_id"].startswith("conn_")
    assert stats["messages_received"] == 2
    assert stats["messages_sent"] >= 2
    assert {"connected_at", "last_activity", "subscriptions"} <= set(stats)


@pytest.mark.parametrize(
    "frame, code",
    [
        ("{not json", "INVALID_MESSAGE"),
        ("[1, 2]", "INVALID_MESSAGE"),
        ('"text"', "INVALID_MESSAGE"),
        ("{}", "INVALID_MESSAGE"),
        ('{"type": 5}', "INVALID_MESSAGE"),
        ('{"type": ""}', "INVALID_MESSAGE"),
        ('{"type": "subscribe", "data": []}', "INVALID_MESSAGE"),
        ('{"type": "subscribe", "data": {"event_types": "security_event"}}', "INVALID_MESSAGE"),
        (
            '{"type": "subscribe", "data": {"event_types": ["x"], "replace_existing": "yes"}}',
            "INVALID_MESSAGE",
        ),
        ('{"type": "launch_missiles"}', "UNKNOWN_MESSAGE_TYPE"),
    ],
)
async def test_bad_input_gets_an_error_and_the_connection_goes_on(alice_ws, frame, code):
    await alice_ws.send_text(frame)
    error = await alice_ws.receive()
    assert error["type"] == "error"
    assert error["error_code"] == code
    assert error["data"]["error"]
    await alice_ws.send({"type": "ping"})
    assert (await alice_ws.receive())["type"] == "pong"


async def test_oversized_frame_is_invalid(alice_ws, settings):
    settings.REALTIME = {**settings.REALTIME, "MAX_FRAME_BYTES": 1024}
    await alice_ws.send({"type": "ping", "data": {"pad": "x" * 2000}})
    error = await alice_ws.receive()
    assert error["error_code"] == "INVALID_MESSAGE"
    assert "1024" in error["message"]


async def test_binary_frame_is_invalid(alice_ws):
    await alice_ws.communicator.send_to(bytes_data=b"\x00\x01")
    assert (await alice_ws.receive())["error_code"] == "INVALID_MESSAGE"


async def test_message_rate_limit_spans_sockets_of_the_user(ws, alice, token_for, settings):
    settings.REALTIME = {**settings.REALTIME, "MESSAGE_RATE": 3}
    first = await ws("/ws", token=token_for(alice))
    second = await ws("/ws", token=token_for(alice))
    await first.receive()
    await second.receive()
    for client in (first, second, first):
        await client.send({"type": "ping"})
        assert (await client.receive())["type"] == "pong"
    await second.send({"type": "ping"})
    error = await second.receive()
    assert error["error_code"] == "RATE_LIMITED"
    assert error["details"]["limit"] == 3
    assert error["details"]["window"] == 60
    assert 0 < error["details"]["retry_after"] <= 61


async def test_subscription_change_rate_limit(alice_ws, settings):
    settings.REALTIME = {**settings.REALTIME, "SUBSCRIPTION_RATE": 2}
    for _ in range(2):
        await alice_ws.send({"type": "subscribe", "data": {"event_types": ["system_status"]}})
        assert (await alice_ws.receive())["type"] == "subscription_updated"
    await alice_ws.send({"type": "unsubscribe", "data": {"event_types": ["system_status"]}})
    assert (await alice_ws.receive())["error_code"] == "RATE_LIMITED"


async def test_admin_command_rate_limit_applies_to_non_admins_only(
    ws, alice, carol, token_for, settings
):
    settings.REALTIME = {**settings.REALTIME, "ADMIN_COMMAND_RATE": 1}
    analyst = await ws("/ws", token=token_for(alice))
    admin = await ws("/ws", token=token_for(carol))
    await analyst.receive()
    await admin.receive()
    for expected in ("response", "error"):
        await analyst.send({"type": "get_stats"})
        assert (await analyst.receive())["type"] == expected
    for _ in range(3):
        await admin.send({"type": "get_stats"})
        assert (await admin.receive_type("response"))["data"]["connection_id"]


async def test_subscription_and_filter_changes_are_audited(alice_ws, alice):
    await alice_ws.send({"type": "subscribe", "data": {"event_types": ["system_status"]}})
    await alice_ws.receive()
    await alice_ws.send({"type": "set_filter", "data": {"min_priority": 3}})
    await alice_ws.receive()
    wanted = {"realtime.subscription_changed", "realtime.filter_changed"}
    assert await eventually(
        lambda: wanted <= set(AuditLog.objects.filter(actor=alice).values_list("action", flat=True))
    )


async def test_auth_message_renews_the_token_of_the_same_user(alice_ws, alice, token_for):
    await alice_ws.send({"type": "auth", "data": {"token": token_for(alice)}})
    assert (await alice_ws.receive())["type"] == "auth_ok"


async def test_auth_message_with_another_users_token_is_refused(alice_ws, bob, token_for):
    await alice_ws.send({"type": "auth", "data": {"token": token_for(bob)}})
    assert (await alice_ws.receive())["error_code"] == "AUTH_FAILED"
