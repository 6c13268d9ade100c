"""Connecting to the hub: auth in all four ways, refusals with their close codes, limits."""

import asyncio
import gc
import weakref

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client as HttpClient

from realtime.hub import get_hub
from realtime.models import Event
from tests.sockets import eventually
from tests.waiting import until
from threatlens.asgi import application
from threatlens.audit.models import AuditLog

pytestmark = pytest.mark.django_db(transaction=True)

ANALYST_DEFAULTS = {
    "security_event",
    "security_alert",
    "threat_detected",
    "new_alert",
    "alert_updated",
    "incident_created",
    "incident_updated",
    "health_alert",
    "health_update",
    "system_metrics",
    "user_login",
    "user_logout",
    "session_expired",
    "permission_changed",
    "zone_created",
    "zone_updated",
    "zone_deleted",
    "record_created",
    "record_updated",
    "record_deleted",
    "bulk_operation_progress",
    "bulk_operation_complete",
    "zone_access_changed",
}


async def test_token_in_query_is_greeted_with_connection_established(ws, alice, token_for):
    client = await ws("/ws", token=token_for(alice))
    frame = await client.receive()
    assert frame["type"] == "connection_established"
    data = frame["data"]
    assert data["server_info"] == frame["server_info"]
    assert data["server_info"]["name"] == "ThreatLens WebSocket Server"
    assert data["client_id"] == frame["client_id"]
    assert data["user"] == {"id": alice.pk, "username": "alice", "role": "analyst"}
    assert set(data["subscriptions"]) == ANALYST_DEFAULTS
    assert set(data["default_subscriptions"]) == ANALYST_DEFAULTS


async def test_client_id_in_path_is_kept(ws, alice, token_for):
    client = await ws("/ws/dashboard-1.a_b", token=token_for(alice))
    frame = await client.receive()
    assert frame["client_id"] == "dashboard-1.a_b"


@pytest.mark.parametrize("client_id", ["x" * 65, "bad%20id", "bang!"])
async def test_invalid_client_id_closes_with_1003(ws, alice, token_for, client_id):
    client = await ws(f"/ws/{client_id}", token=token_for(alice))
    error, code = await client.receive_close()
    assert code == 1003
    assert error["error_code"] == "INVALID_MESSAGE"


async def test_bearer_header_authenticates(ws, bob, token_for):
    client = await ws("/ws", headers=[(b"authorization", f"Bearer {token_for(bob)}".encode())])
    frame = await client.receive()
    assert frame["data"]["user"]["role"] == "viewer"
    assert set(frame["data"]["subscriptions"]) == {
        "health_update",
        "system_metrics",
        "system_status",
        "user_login",
        "user_logout",
        "session_expired",
        "permission_changed",
    }


async def test_session_cookie_authenticates(ws, carol):
    cookie = f"sessionid={await asyncio.to_thread(session_cookie, carol)}".encode()
    client = await ws("/ws", headers=[(b"cookie", cookie)])
    frame = await client.receive()
    assert frame["data"]["user"]["username"] == "carol"
    assert "system_metrics" not in frame["data"]["subscriptions"]
    assert "user_action" in frame["data"]["subscriptions"]


async def test_a_session_cookie_of_a_changed_password_does_not_authenticate(ws, carol):
    cookie = f"sessionid={await asyncio.to_thread(session_cookie, carol)}".encode()

    def change_password():
        carol.set_password("another secret")
        carol.save()

    await asyncio.to_thread(change_password)
    client = await ws("/ws", headers=[(b"cookie", cookie)])
    assert await client.receive_nothing()  # no user: the socket waits for an auth message


async def test_an_unknown_session_cookie_does_not_authenticate(ws):
    client = await ws("/ws", headers=[(b"cookie", b"sessionid=no-such-session")])
    assert await client.receive_nothing()


def session_cookie(user):
    http = HttpClient()
    http.force_login(user)
    return http.cookies["sessionid"].value


async def test_first_message_auth_answers_auth_ok_then_greets(ws, alice, token_for):
    client = await ws("/ws")
    assert await client.receive_nothing()
    await client.send({"type": "auth", "data": {"token": token_for(alice)}, "id": "a1"})
    ok = await client.receive()
    assert ok["type"] == "auth_ok"
    assert ok["id"] == "a1"
    assert ok["data"]["user"]["username"] == "alice"
    assert ok["data"]["expires_at"]
    assert (await client.receive())["type"] == "connection_established"


async def test_another_message_before_auth_fails_with_1008(ws):
    client = await ws("/ws")
    await client.send({"type": "subscribe", "data": {"event_types": ["security_event"]}})
    error, code = await client.receive_close()
    assert (error["error_code"], code) == ("AUTH_FAILED", 1008)


async def test_no_credentials_time_out_with_1008(ws, settings):
    settings.REALTIME = {**settings.REALTIME, "AUTH_TIMEOUT": 0.1}
    client = await ws("/ws")
    error, code = await client.receive_close()
    assert (error["error_code"], code) == ("AUTH_FAILED", 1008)


@pytest.mark.parametrize("token", ["not-a-jwt", "eyJhbGciOiJIUzI1NiJ9.e30.bad"])
async def test_bad_token_is_refused_with_auth_failed_and_1008(ws, token):
    client = await ws("/ws", token=token)
    error, code = await client.receive_close()
    assert code == 1008
    assert error["error_code"] == "AUTH_FAILED"
    assert error["data"]["error"] == error["message"]


async def test_inactive_users_token_is_refused(ws, alice, token_for):
    token = token_for(alice)
    alice.is_active = False
    await asyncio.to_thread(alice.save, update_fields=["is_active"])
    client = await ws("/ws", token=token)
    error, code = await client.receive_close()
    assert (error["error_code"], code) == ("AUTH_FAILED", 1008)


async def test_a_users_further_sockets_connect_without_reading_the_user_again(
    ws, alice, token_for, monkeypatch
):
    from realtime import auth

    reads = []
    read = auth._read_principal

    async def counted(user_id):
        reads.append(user_id)
        return await read(user_id)

    monkeypatch.setattr(auth, "_read_principal", counted)
    for _ in range(3):
        client = await ws("/ws", token=token_for(alice))
        assert (await client.receive())["type"] == "connection_established"
    assert len(reads) == 1


@pytest.mark.parametrize("change", ["deactivate", "delete"])
async def test_a_token_stops_working_at_once_when_its_user_loses_access(
    ws, alice, token_for, change
):
    token = token_for(alice)
    first = await ws("/ws", token=token)
    assert (await first.receive())["type"] == "connection_established"  # alice is cached now
    # Its audit row names alice: let it be written before she is deleted.
    assert await eventually(
        lambda: AuditLog.objects.filter(action="realtime.connect", actor=alice).exists()
    )

    def lose_access():
        if change == "delete":
            alice.delete()
        else:
            alice.is_active = False
            alice.save(update_fields=["is_active"])

    await asyncio.to_thread(lose_access)
    client = await ws("/ws", token=token)
    error, code = await client.receive_close()
    assert (error["error_code"], code) == ("AUTH_FAILED", 1008)


async def test_foreign_origin_is_refused(ws, alice, token_for):
    client = await ws("/ws", token=token_for(alice), headers=[(b"origin", b"https://evil.example")])
    error, code = await client.receive_close()
    assert (error["error_code"], code) == ("PERMISSION_DENIED", 1008)


async def test_per_user_connection_limit_closes_with_1013(ws, alice, token_for, settings):
    settings.REALTIME = {**settings.REALTIME, "MAX_CONNECTIONS_PER_USER": 1}
    first = await ws("/ws", token=token_for(alice))
    assert (await first.receive())["type"] == "connection_established"
    second = await ws("/ws", token=token_for(alice))
    error, code = await second.receive_close()
    assert (error["error_code"], code) == ("CONNECTION_LIMIT", 1013)
    await first.disconnect()
    third = await ws("/ws", token=token_for(alice))
    assert (await third.receive())["type"] == "connection_established"


async def test_server_connection_limit_closes_with_1013(ws, alice, bob, token_for, settings):
    settings.REALTIME = {**settings.REALTIME, "MAX_CONNECTIONS": 1}
    first = await ws("/ws", token=token_for(alice))
    assert (await first.receive())["type"] == "connection_established"
    other = await ws("/ws", token=token_for(bob))
    error, code = await other.receive_close()
    assert (error["error_code"], code) == ("CONNECTION_LIMIT", 1013)


def refusing_close_codes(application):
    """`application` under a server whose send refuses close codes as daphne's autobahn
    does without the daphne_close_codes fast path: all but 1000 and 3000-4999."""

    async def served(scope, receive, send):
        async def autobahn_send(message):
            code = message.get("code", 1000)
            if message["type"] == "websocket.close" and code != 1000 and not 3000 <= code <= 4999:
                raise Exception(f"invalid close code {code} (must be 1000 or from [3000, 4999])")
            await send(message)

        await application(scope, receive, autobahn_send)

    return served


async def test_a_server_refusing_1013_still_closes_the_refused_socket_with_4013(
    fresh_hub, alice, token_for, settings
):
    from channels.testing import WebsocketCommunicator

    from tests.sockets import Client
    from threatlens.asgi import application

    settings.REALTIME = {**settings.REALTIME, "MAX_CONNECTIONS_PER_USER": 1}
    path = f"/ws?token={token_for(alice)}"
    first = Client(WebsocketCommunicator(application, path))
    second = Client(WebsocketCommunicator(refusing_close_codes(application), path))
    try:
        await first.connect()
        assert (await first.receive())["type"] == "connection_established"
        await second.connect()
        error, code = await second.receive_close()
        assert (error["error_code"], code) == ("CONNECTION_LIMIT", 4013)
    finally:
        await second.disconnect()
        await first.disconnect()


async def test_connect_and_disconnect_are_audited(ws, alice, token_for):
    client = await ws("/ws/audited", token=token_for(alice))
    await client.receive()
    await client.disconnect()
    assert await eventually(
        lambda: (
            {"realtime.connect", "realtime.disconnect"}
            <= set(AuditLog.objects.filter(actor=alice).values_list("action", flat=True))
        )
    )


async def test_a_closed_socket_is_freed_at_once_not_left_to_the_collector(
    fresh_hub, alice, token_for
):
    """The consumer, its membership and its connection refer to each other while the
    socket is open; once it has closed, none of them (nor the scope they hold) waits as
    garbage for the collector's next full pass."""
    communicator = WebsocketCommunicator(application, f"/ws?token={token_for(alice)}")
    assert (await communicator.connect())[0]
    await communicator.receive_from()
    (connection,) = get_hub().registry.connections.values()
    consumer = weakref.ref(connection.owner.consumer)
    del connection
    gc.disable()
    try:
        await communicator.disconnect()
        del communicator
        await until(lambda: consumer() is None, "the consumer is freed, without the collector")
    finally:
        gc.enable()


async def test_a_user_deleted_while_connected_is_still_named_in_the_audit(ws, alice, token_for):
    client = await ws("/ws/gone", token=token_for(alice))
    await client.receive()
    # The connect row names alice: written first, so her deletion does not race it.
    assert await eventually(
        lambda: AuditLog.objects.filter(action="realtime.connect", target_id="gone").exists()
    )
    await asyncio.to_thread(alice.delete)
    await client.disconnect()

    def disconnect_row():
        return AuditLog.objects.filter(action="realtime.disconnect", target_id="gone").first()

    assert await eventually(lambda: disconnect_row() is not None)
    entry = await asyncio.to_thread(disconnect_row)
    assert (entry.actor_id, entry.details["username"]) == (None, "alice")


async def test_sockets_connecting_together_share_audit_transactions(ws, alice, token_for):
    from realtime.auditing import socket_audit

    batches = []

    def counted(sender, *, rows, live, **kwargs):
        batches.append((len(rows), live))

    socket_audit.connect(counted)
    try:
        clients = await asyncio.gather(
            *(ws(f"/ws/together-{n}", token=token_for(alice)) for n in range(8))
        )
        for client in clients:
            assert (await client.receive())["type"] == "connection_established"
        assert await eventually(
            lambda: AuditLog.objects.filter(action="realtime.connect", actor=alice).count() == 8
        )
    finally:
        socket_audit.disconnect(counted)
    assert sum(size for size, _live in batches) == 8 and len(batches) < 8
    assert {live for _size, live in batches} == {False}


async def test_a_connect_does_not_wait_for_its_audit_row(ws, alice, token_for, monkeypatch):
    from realtime import auditing

    monkeypatch.setattr(auditing, "FLUSH_DELAY", 60)  # the row waits: the socket must not
    client = await ws("/ws/early", token=token_for(alice))
    assert (await client.receive())["type"] == "connection_established"
    assert not await asyncio.to_thread(
        AuditLog.objects.filter(action="realtime.connect", target_id="early").exists
    )
    await auditing.flush_all()
    assert await asyncio.to_thread(
        AuditLog.objects.filter(action="realtime.connect", target_id="early").exists
    )


async def test_socket_sessions_are_audited_but_not_pushed_to_admins(ws, carol, alice, token_for):
    watcher = await ws("/ws", token=token_for(carol))
    assert (await watcher.receive())["type"] == "connection_established"
    await watcher.send({"type": "subscribe", "data": {"event_types": ["user_action"]}})
    assert (await watcher.receive_type("subscription_updated"))["data"]["subscriptions"]
    client = await ws("/ws/quiet", token=token_for(alice))
    assert (await client.receive())["type"] == "connection_established"
    await client.send({"type": "set_filter", "data": {"min_priority": 1}})
    assert (await client.receive_type("filter_updated"))["data"]["action"] == "set"
    await client.disconnect()

    def actions():
        return set(AuditLog.objects.filter(target_id="quiet").values_list("action", flat=True))

    assert await eventually(
        lambda: {"realtime.connect", "realtime.filter_changed", "realtime.disconnect"} <= actions()
    )
    assert await watcher.receive_nothing(timeout=0.5)
    assert not await asyncio.to_thread(
        Event.objects.filter(event_type="user_action", data__target_id="quiet").exists
    )


async def test_socket_audit_rows_wait_in_bounded_memory(monkeypatch):
    from realtime import auditing

    monkeypatch.setattr(auditing, "MAX_PENDING", 3)
    monkeypatch.setattr(auditing, "FLUSH_DELAY", 60)
    writer = auditing.SessionAuditWriter()
    for n in range(5):
        writer.add("realtime.connect", None, {"client_id": str(n)}, {"client": ("1.2.3.4", 1)})
    assert (writer.pending, writer.dropped) == (3, 2)
    writer._flusher.cancel()


async def test_auth_failure_is_audited(ws):
    client = await ws("/ws", token="garbage")
    await client.receive_close()
    assert await asyncio.to_thread(AuditLog.objects.filter(action="realtime.auth_failed").exists)


def captured_writes(monkeypatch):
    """The batches SessionAuditWriter hands to the audit log, captured instead of written."""
    from realtime import auditing

    batches = []
    monkeypatch.setattr(auditing, "send_rows", lambda rows, live: batches.append(list(rows)))
    return batches


async def test_socket_audit_rows_wait_while_connects_keep_coming(monkeypatch):
    """A reconnect storm is not slowed by writing its rows while it lasts: they are written
    once the rows pause (generous margins: a gap of a whole FLUSH_DELAY never happens here)."""
    from realtime import auditing

    batches = captured_writes(monkeypatch)
    monkeypatch.setattr(auditing, "FLUSH_DELAY", 1.0)
    monkeypatch.setattr(auditing, "FLUSH_AT_MOST", 60)
    writer = auditing.SessionAuditWriter()
    for n in range(15):
        writer.add("realtime.connect", None, {"client_id": str(n)}, {"client": ("1.2.3.4", 1)})
        await asyncio.sleep(0.1)
    assert batches == []  # 1.5 s of rows, none written yet
    await until(lambda: writer.pending == 0, message="the rows were never written")
    assert [row.target_id for batch in batches for row in batch] == [str(n) for n in range(15)]


async def test_socket_audit_rows_are_written_within_the_bound_however_long_the_storm(
    monkeypatch,
):
    from realtime import auditing

    batches = captured_writes(monkeypatch)
    monkeypatch.setattr(auditing, "FLUSH_DELAY", 60)  # rows never pause
    monkeypatch.setattr(auditing, "FLUSH_AT_MOST", 0.2)
    writer = auditing.SessionAuditWriter()
    writer.add("realtime.connect", None, {"client_id": "first"}, {"client": ("1.2.3.4", 1)})
    await until(lambda: batches, message="the bound did not write the row")
    assert [row.target_id for row in batches[0]] == ["first"]
