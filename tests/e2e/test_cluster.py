"""Several server processes on one Redis (a private redis-server, so it can be restarted)."""

import asyncio
import json
import shutil
import socket
import subprocess
import time
import uuid

import pytest
import websockets

from tests.e2e.live_server import free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]


class PrivateRedis:
    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def private_redis():
    redis = PrivateRedis().start()
    yield redis
    redis.stop()


@pytest.fixture
def cluster(running_server, private_redis):
    """Two daphne processes sharing the private Redis and the test database."""
    env = {"REDIS_URL": private_redis.url, "REDIS_KEY_PREFIX": f"cluster-{uuid.uuid4().hex[:6]}"}
    return running_server("daphne", count=2, **env)


async def connect(server, token, path="/ws"):
    socket = await websockets.connect(f"{server.ws_url}{path}?token={token}")
    assert json.loads(await socket.recv())["type"] == "connection_established"
    return socket


async def next_event(socket, event_type, timeout=5):
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await socket.recv())
            frames = frame["events"] if frame["type"] == "batch" else [frame]
            for item in frames:
                if event_type in (item.get("type"), item.get("event_type")):
                    return item


def events_from_table(server, token):
    """How many events this server's hub first saw in the event table, not the layer."""
    status, info = server.request("GET", "/ws/info", token=token)
    assert status == 200, info
    (mine,) = [p for p in info["processes"] if p["pid"] == server.process.pid]
    return mine["counters"].get("events_from_table", 0)


def publish(server, token, data):
    status, body = server.request(
        "POST", "/api/realtime/publish/", {"event_type": "security_event", "data": data}, token
    )
    assert status == 201, body
    return body["message_id"]


async def test_one_publish_reaches_clients_on_both_processes(cluster, alice, carol, token_for):
    first, second = cluster
    on_first = await connect(first, token_for(alice))
    on_second = await connect(second, token_for(alice))
    await asyncio.to_thread(publish, first, token_for(carol), {"n": 1})
    assert (await next_event(on_first, "security_event"))["data"] == {"n": 1}
    assert (await next_event(on_second, "security_event"))["data"] == {"n": 1}
    await on_first.close()
    await on_second.close()


async def test_connection_limit_is_cluster_wide(running_server, private_redis, alice, token_for):
    env = {"REDIS_URL": private_redis.url, "REALTIME_MAX_CONNECTIONS_PER_USER": "1"}
    first, second = running_server("daphne", count=2, **env)
    held = await connect(first, token_for(alice))
    async with websockets.connect(f"{second.ws_url}/ws?token={token_for(alice)}") as refused:
        assert json.loads(await refused.recv())["error_code"] == "CONNECTION_LIMIT"
    await held.close()


async def test_ws_info_lists_connections_of_every_process(cluster, alice, carol, token_for):
    first, second = cluster
    sockets = [await connect(first, token_for(alice)), await connect(second, token_for(alice))]
    deadline = time.time() + 10
    while True:
        status, info = await asyncio.to_thread(
            first.request, "GET", "/ws/info", None, token_for(carol)
        )
        assert status == 200
        if info["totals"]["connections"] == 2 or time.time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert info["totals"]["connections"] == 2
    assert len(info["processes"]) == 2
    # The other process listed its socket when asked: the details of both are here.
    assert all(process["connections_listed"] for process in info["processes"])
    assert len({c["connection_id"] for c in info["connections"]}) == 2
    for client in sockets:
        await client.close()


async def test_redis_restart_loses_nothing(cluster, private_redis, alice, carol, token_for):
    """Redis goes down during delivery: the servers keep serving, events published meanwhile
    are stored and still delivered, health says critical, and it all resumes by itself."""
    first, second = cluster
    admin = token_for(carol)
    watcher = await connect(second, token_for(alice), path="/ws/restart-watcher")
    last_id = await asyncio.to_thread(publish, first, admin, {"n": 0})
    await next_event(watcher, "security_event")

    private_redis.stop()
    for n in (1, 2, 3):
        await asyncio.to_thread(publish, first, admin, {"n": n})
    status, health = await asyncio.to_thread(first.request, "GET", "/healthz")
    assert status == 503
    assert health["components"]["channel_layer"]["status"] == "critical"
    received = [
        (await next_event(watcher, "security_event", timeout=10))["data"]["n"] for _ in range(3)
    ]
    assert received == [1, 2, 3]  # from the event table while the layer is down

    private_redis.start()
    deadline = time.time() + 20
    while time.time() < deadline:
        status, _ = await asyncio.to_thread(second.request, "GET", "/healthz")
        if status == 200:
            break
        await asyncio.sleep(0.5)
    assert status == 200
    from_table = await asyncio.to_thread(events_from_table, second, admin)
    await asyncio.to_thread(publish, first, admin, {"n": 4})
    assert (await next_event(watcher, "security_event"))["data"] == {"n": 4}
    # ...through the layer again, not the event table: the hub is subscribed again.
    assert await asyncio.to_thread(events_from_table, second, admin) == from_table
    await watcher.close()

    # A client that was away for all of it replays the gap: nothing lost, no duplicates.
    again = await websockets.connect(f"{second.ws_url}/ws?token={token_for(alice)}&since={last_id}")
    frames = []
    async with asyncio.timeout(5):
        while True:
            frame = json.loads(await again.recv())
            if frame["type"] == "replay_complete":
                break
            if frame.get("replayed"):
                frames.append(frame["data"]["n"])
    assert frames == [1, 2, 3, 4]
    await again.close()
