"""Access that changes while connected: token expiry, deactivation, role changes, admin
disconnects, legacy per-topic sockets, and debug mode."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from rest_framework_simplejwt.tokens import AccessToken

from realtime import control
from realtime.publishing import publish
from tests.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

apublish = sync_to_async(publish)


def short_token(user, seconds):
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=seconds))
    return str(token)


async def test_token_expiry_sends_session_expired_then_closes_with_1008(ws, alice, clock):
    client = await ws("/ws", token=await sync_to_async(short_token)(alice, 60))
    await client.receive()
    assert await client.receive_nothing()  # not before it expires
    clock.advance(61)
    expired = await client.receive(timeout=5)  # the hub looks once a second
    assert (expired["type"], expired["event_type"]) == ("event", "session_expired")
    error, code = await client.receive_close()
    assert (error["error_code"], code) == ("AUTH_FAILED", 1008)


async def test_auth_message_renews_before_expiry(ws, alice, token_for, clock):
    client = await ws("/ws", token=await sync_to_async(short_token)(alice, 60))
    await client.receive()
    await client.send({"type": "auth", "data": {"token": token_for(alice)}})
    assert (await client.receive())["type"] == "auth_ok"
    clock.advance(61)  # past the first token's expiry, well before the second's
    await client.send({"type": "ping"})
    assert (await client.receive())["type"] == "pong"


async def test_expired_token_is_checked_on_every_message(ws, alice, clock):
    client = await ws("/ws", token=await sync_to_async(short_token)(alice, 60))
    await client.receive()
    clock.advance(61)
    await client.send({"type": "ping"})
    error, code = await client.receive_close()
    assert code == 1008


async def test_an_expired_token_is_refused_at_connect(ws, alice, clock):
    token = await sync_to_async(short_token)(alice, 60)
    clock.advance(61)
    client = await ws("/ws", token=token)
    error, code = await client.receive_close()
    assert (error["error_code"], code) == ("AUTH_FAILED", 1008)


async def test_deactivated_user_is_disconnected_at_once(ws, alice, token_for):
    client = await ws("/ws", token=token_for(alice))
    await client.receive()

    def deactivate():
        alice.is_active = False
        alice.save(update_fields=["is_active"])
        control.user_access_changed(alice.pk)

    await sync_to_async(deactivate)()
    error, code = await client.receive_close()
    assert (error["error_code"], code) == ("AUTH_FAILED", 1008)


async def test_role_change_rechecks_subscriptions(ws, alice, token_for):
    client = await ws("/ws", token=token_for(alice))
    await client.receive()

    def demote():
        alice.groups.set([Group.objects.get(name="viewer")])
        control.user_access_changed(alice.pk)

    await sync_to_async(demote)()
    # Wait for the change itself, not for a fixed time: its notice, then the recheck
    # (asked until it shows; the two travel separately).
    notice = await client.receive_event("permission_changed", timeout=5)
    assert notice["data"]["role"] == "viewer"

    async def rechecked_subscriptions():
        await client.send({"type": "get_subscriptions"})
        reply = await client.receive_type("response")
        return reply if "security_event" not in reply["data"]["subscriptions"] else None

    # Asked every 0.1 s: under the message rate limit.
    reply = await until(rechecked_subscriptions, "the recheck drops security_event", interval=0.1)
    assert "health_update" in reply["data"]["subscriptions"]
    await apublish("security_event", {"n": 1})
    assert await client.receive_nothing()


async def test_admin_can_disconnect_a_users_sockets(ws, alice, token_for):
    first = await ws("/ws", token=token_for(alice))
    second = await ws("/ws/other", token=token_for(alice))
    await first.receive()
    await second.receive()
    await sync_to_async(control.disconnect_user)(alice.pk)
    for client in (first, second):
        error, code = await client.receive_close()
        assert (error["error_code"], code) == ("PERMISSION_DENIED", 1008)


@pytest.mark.parametrize(
    "topic, expected",
    [
        (
            "health",
            {"health_update", "health_alert", "system_metrics", "system_status", "health_check"},
        ),
        (
            "dns_management",
            {
                "zone_created",
                "zone_updated",
                "zone_deleted",
                "record_created",
                "record_updated",
                "record_deleted",
                "bulk_operation_progress",
                "bulk_operation_complete",
                "zone_access_changed",
            },
        ),
        ("security", {"security_alert", "threat_detected", "rpz_updated", "threat_feed_updated"}),
        (
            "system",
            {
                "health_update",
                "health_alert",
                "forwarder_status_change",
                "system_metrics",
                "bind_reload",
                "config_change",
            },
        ),
    ],
)
async def test_legacy_socket_presets_its_topic_and_warns(ws, alice, token_for, topic, expected):
    client = await ws(f"/ws/{topic}/{alice.pk}", token=token_for(alice))
    greeting = await client.receive()
    assert set(greeting["data"]["subscriptions"]) == expected
    warning = await client.receive()
    assert warning["type"] == "deprecation_warning"
    assert warning["data"]["replacement"] == "/ws"


async def test_legacy_socket_of_another_user_is_refused(ws, alice, bob, token_for):
    client = await ws(f"/ws/health/{bob.pk}", token=token_for(alice))
    error, code = await client.receive_close()
    assert (error["error_code"], code) == ("PERMISSION_DENIED", 1008)


async def test_admin_may_open_another_users_legacy_socket(ws, alice, carol, token_for):
    client = await ws(f"/ws/admin/{alice.pk}", token=token_for(carol))
    greeting = await client.receive()
    assert "user_action" in greeting["data"]["subscriptions"]


async def test_legacy_preset_keeps_only_what_the_role_may_receive(ws, bob, token_for):
    client = await ws(f"/ws/security/{bob.pk}", token=token_for(bob))
    greeting = await client.receive()
    assert greeting["data"]["subscriptions"] == []


async def test_debug_mode_reports_subscription_decisions_and_filtered_events(ws, carol, token_for):
    client = await ws("/ws?debug=true", token=token_for(carol))
    await client.receive()
    await client.send({"type": "subscribe", "data": {"event_types": ["system_metrics", "nope"]}})
    decisions = [await client.receive_type("debug"), await client.receive_type("debug")]
    assert {d["data"]["decision"] for d in decisions} == {"subscribed", "refused"}
    await client.send({"type": "set_filter", "data": {"min_priority": 9}})
    await client.receive_type("filter_updated")
    await apublish("system_metrics", {"metrics": {}})
    while (debug := await client.receive_type("debug"))["data"]["event_type"] != "system_metrics":
        pass  # user_action events of the audit are filtered too
    assert debug["data"]["decision"] == "filtered"


async def test_debug_mode_is_refused_for_non_admins(ws, alice, token_for):
    client = await ws("/ws?debug=true", token=token_for(alice))
    await client.receive()
    assert (await client.receive())["error_code"] == "PERMISSION_DENIED"
    await client.send({"type": "subscribe", "data": {"event_types": ["system_status"]}})
    assert (await client.receive())["type"] == "subscription_updated"


async def test_admin_action_closes_a_users_sockets(ws, alice, carol, token_for):
    from django.test import Client as HttpClient

    client = await ws("/ws", token=token_for(alice))
    await client.receive()

    def run_action():
        http = HttpClient()
        http.force_login(carol)
        return http.post(
            "/admin/auth/user/",
            {"action": "disconnect_sockets", ACTION_CHECKBOX_NAME: [alice.pk]},
        )

    response = await sync_to_async(run_action)()
    assert response.status_code == 302
    error, code = await client.receive_close()
    assert (error["error_code"], code) == ("PERMISSION_DENIED", 1008)


async def test_database_down_at_connect_closes_with_1011(ws, alice, token_for, monkeypatch):
    def broken(user):
        raise ConnectionError("database unavailable")

    monkeypatch.setattr("realtime.access.principal_for", broken)
    client = await ws("/ws", token=token_for(alice))
    error, code = await client.receive_close()
    assert (error["error_code"], code) == ("INTERNAL_ERROR", 1011)


async def test_channel_layer_down_at_connect_closes_with_1011(ws, alice, token_for, monkeypatch):
    from realtime.hub import Hub

    original = Hub.start

    async def start_with_a_broken_layer(self):
        await original(self)
        self.listener.healthy = False

    monkeypatch.setattr(Hub, "start", start_with_a_broken_layer)
    client = await ws("/ws", token=token_for(alice))
    error, code = await client.receive_close()
    assert (error["error_code"], code) == ("INTERNAL_ERROR", 1011)
