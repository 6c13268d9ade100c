"""Real servers, real sockets: every socket ends clean, no secret in the server's log."""

import asyncio
import contextlib
import json
import shutil
import socket
import uuid

import pytest
import websockets

from tests.e2e.live_server import LiveServer
from tests.sockets import eventually
from tests.waiting import until

pytestmark = pytest.mark.e2e


async def established(server, token, path="/ws"):
    socket = await websockets.connect(f"{server.ws_url}{path}?token={token}")
    greeting = json.loads(await socket.recv())
    assert greeting["type"] == "connection_established", greeting
    return socket


async def next_of(socket, kind, timeout=5):
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await socket.recv())
            if frame.get("type") == kind:
                return frame


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
async def test_a_lone_surrogate_id_gets_an_error_and_leaks_no_slot(
    running_server, alice, token_for, kind
):
    server = running_server(kind, REALTIME_MAX_CONNECTIONS_PER_USER="2")
    token = token_for(alice)
    for _ in range(4):  # twice the limit: a leaked slot would refuse the later ones
        socket = await established(server, token)
        await socket.send('{"type":"ping","id":"\\ud800"}')
        error = await next_of(socket, "error")
        assert error["error_code"] == "INVALID_MESSAGE"
        # The socket lives on: the next request is answered.
        await socket.send('{"type":"ping","id":"after"}')
        assert (await next_of(socket, "pong"))["id"] == "after"
        await socket.close()
    last = await established(server, token)
    await last.close()


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
async def test_clients_that_drop_their_connection_mid_request_leak_no_slot(
    running_server, alice, token_for, kind
):
    server = running_server(kind, REALTIME_MAX_CONNECTIONS_PER_USER="2")
    token = token_for(alice)
    for _ in range(6):  # three times the limit
        socket = await established_once_free(server, token)
        for number in range(50):
            await socket.send(
                json.dumps(
                    {
                        "type": "subscribe",
                        "id": number,
                        "data": {"event_types": ["security_event", "nope"]},
                    }
                )
            )
        socket.transport.abort()  # a killed tab: no close frame, the TCP connection reset
    await (await established_once_free(server, token)).close()


async def established_once_free(server, token, timeout=15):
    """A socket, once the server has worked through what dropped clients sent and freed
    their slots: a leaked slot is never freed."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        socket = await websockets.connect(f"{server.ws_url}/ws?token={token}")
        frame = json.loads(await socket.recv())
        if frame["type"] == "connection_established":
            return socket
        await socket.close()
        assert frame["error_code"] == "CONNECTION_LIMIT", frame
        assert asyncio.get_running_loop().time() < deadline, "the slots stayed taken"
        await asyncio.sleep(0.3)


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
async def test_no_token_reaches_the_server_log(transactional_db, alice, token_for, kind):
    """The most talkative log of each server (access log, debug) over a session: sockets
    with the token in the query, refused tokens, a token in an HTTP query string."""
    import urllib.request

    server = LiveServer(kind, {"LOG_LEVEL": "DEBUG"}, verbose=True).start()
    try:
        token = token_for(alice)
        socket = await established(server, token)
        await socket.send(json.dumps({"type": "ping", "id": 1}))
        await next_of(socket, "pong")
        await socket.close()
        refused = f"{token[:-4]}AAAA"  # a bad signature, otherwise a real token
        async with websockets.connect(f"{server.ws_url}/ws?token={refused}") as bad:
            assert json.loads(await bad.recv())["error_code"] == "AUTH_FAILED"
        with contextlib.suppress(OSError):
            await asyncio.to_thread(
                urllib.request.urlopen, f"{server.url}/api/alerts/?token={token}", timeout=5
            )
        # The last request is in the log once the server wrote it: everything before is too.
        await until(lambda: "/api/alerts/" in server.log_text(), "the server logs the request")
        log = server.log_text()
    finally:
        server.stop()
    assert "token=[redacted]" in log  # the server did log the requests, masked
    for secret in (token, refused, token.split(".")[1], token.split(".")[2]):
        assert secret not in log


def this_process(server, token):
    status, info = server.request("GET", "/ws/info", token=token)
    assert status == 200, info
    (mine,) = [p for p in info["processes"] if p["pid"] == server.process.pid]
    return mine


def was_established(process):
    return process["connections"] or process["counters"].get("messages_sent_by_closed")


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
async def test_a_client_that_never_reads_is_closed_after_the_send_timeout(
    running_server, alice, carol, token_for, kind
):
    from realtime import servers

    # daphne's send never waits, so the hub sees a full buffer under daphne only through
    # the daphne_transport fast path. Without it, daphne's own keepalive drops the client:
    # a ping when the socket has been quiet for --ping-interval, no pong within
    # --ping-timeout (docs/servers.md). The hub then only sees the disconnect.
    hub_sees_it = kind == "uvicorn" or servers.enabled("daphne_transport")
    keepalive = () if hub_sees_it else ("--ping-interval", "1", "--ping-timeout", "1")
    server = running_server(kind, server_args=keepalive, REALTIME_SEND_TIMEOUT="1")
    # A client that opens a socket and then reads nothing at all.
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", server.port))
    stuck.sendall(
        f"GET /ws?token={token_for(alice)} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
    )
    admin = token_for(carol)
    # Established: open now, or already closed after its greeting (daphne's keepalive may
    # drop it before the flood begins).
    assert await eventually(lambda: was_established(this_process(server, admin)), timeout=10)
    big = "x" * 60_000

    def flood():
        for number in range(200):
            body = {"event_type": "security_event", "data": {"message": big, "n": number}}
            status, reply = server.request("POST", "/api/realtime/publish/", body, admin)
            assert status == 201, reply
            mine = this_process(server, admin)
            if mine["counters"].get("stalled_sockets_closed") or not mine["connections"]:
                return number

    await asyncio.to_thread(flood)
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        mine = await asyncio.to_thread(this_process, server, admin)
        if mine["connections"] == 0 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert mine["counters"].get("stalled_sockets_closed") == (1 if hub_sees_it else None), (
        json.dumps(mine)
    )
    assert mine["connections"] == 0
    stuck.close()


def manage(server, *args):
    """A management command run as another process on the server's database."""
    import subprocess
    import sys

    from tests.e2e.live_server import ROOT

    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=server.env, check=True, timeout=60
    )


async def test_a_demotion_by_another_process_reaches_the_open_socket(
    running_server, carol, token_for
):
    server = running_server("uvicorn", REALTIME_ACCESS_CHECK_INTERVAL="0.5")
    socket = await established(server, token_for(carol))
    await asyncio.to_thread(
        manage, server, "create_user", "carol", "--role", "viewer", "--password", "x-Pass-9-word"
    )

    async def admin_events_gone():
        await socket.send(json.dumps({"type": "get_subscriptions", "id": "s"}))
        reply = await next_of(socket, "response")
        return "user_action" not in reply["data"]["available"]

    assert await until(admin_events_gone, "the access check takes user_action away", interval=0.2)
    await socket.close()


async def test_a_deactivation_by_another_process_closes_the_socket_and_refuses_new_ones(
    running_server, carol, token_for
):
    server = running_server("uvicorn", REALTIME_ACCESS_CHECK_INTERVAL="0.5")
    token = token_for(carol)
    socket = await established(server, token)

    def deactivate():
        manage(
            server,
            "shell",
            "-c",
            "from django.contrib.auth.models import User; "
            "u = User.objects.get(username='carol'); u.is_active = False; u.save()",
        )

    await asyncio.to_thread(deactivate)
    error = await next_of(socket, "error", timeout=5)
    assert error["error_code"] == "AUTH_FAILED"
    async with websockets.connect(f"{server.ws_url}/ws?token={token}") as again:
        assert json.loads(await again.recv())["error_code"] == "AUTH_FAILED"


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
async def test_a_deactivation_made_while_redis_is_down_reaches_the_other_process(
    running_server, carol, token_for
):
    from tests.e2e.test_cluster import PrivateRedis

    redis = PrivateRedis().start()
    try:
        env = {
            "REDIS_URL": redis.url,
            "REDIS_KEY_PREFIX": f"secws-{uuid.uuid4().hex[:6]}",
            "REALTIME_ACCESS_CHECK_INTERVAL": "0.5",
        }
        first, second = running_server("uvicorn", count=2, **env)
        socket = await established(second, token_for(carol))
        redis.stop()

        def deactivate():
            manage(
                first,
                "shell",
                "-c",
                "from django.contrib.auth.models import User; "
                "u = User.objects.get(username='carol'); u.is_active = False; u.save()",
            )

        await asyncio.to_thread(deactivate)  # its notice cannot travel: Redis is down
        error = await next_of(socket, "error", timeout=5)
        assert error["error_code"] == "AUTH_FAILED"
    finally:
        redis.stop()
