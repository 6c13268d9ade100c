"""Real sockets against a running server: the documents' example clients, close codes."""

import asyncio
import json

import pytest
import websockets

pytestmark = pytest.mark.e2e


class ThreatLensClient:
    """threatlens-ws.md's JavaScript `WebSocketClient`, line for line in Python."""

    def __init__(self, url):
        self.url = url
        self.received = []
        self.types = []  # every frame's type, for the test to wait on replies

    async def connect(self):
        self.ws = await websockets.connect(self.url)
        self.reader = asyncio.create_task(self._read())

    async def _read(self):
        async for text in self.ws:
            message = json.loads(text)
            self.types.append(message["type"])
            self.handle_message(message)

    def handle_message(self, message):
        if message["type"] == "security_event":
            self.received.append(("security", message["data"]))
        elif message["type"] == "system_status":
            self.received.append(("status", message["data"]))
        elif message["type"] == "error":
            self.received.append(("error", message["data"]["error"]))

    async def subscribe(self, event_types):
        await self.send({"type": "subscribe", "data": {"event_types": event_types}})

    async def send(self, message):
        await self.ws.send(json.dumps(message))

    async def close(self):
        self.reader.cancel()
        await self.ws.close()


class UnifiedWebSocketService:
    """unified-ws.md's `UnifiedWebSocketService`: handlers per event_type."""

    def __init__(self):
        self.handlers = {}
        self.errors = []
        self.types = []  # every frame's type, for the test to wait on replies

    async def connect(self, base, token, **options):
        self.ws = await websockets.connect(f"{base}/ws?token={token}", **options)
        self.reader = asyncio.create_task(self._read())

    async def _read(self):
        async for text in self.ws:
            message = json.loads(text)
            self.types.append(message["type"])
            self.handle_message(message)

    def on(self, event_type, handler):
        self.handlers.setdefault(event_type, []).append(handler)

    def handle_message(self, message):
        if message["type"] == "event" and message.get("event_type"):
            for handler in self.handlers.get(message["event_type"], []):
                handler(message["data"])
        elif message["type"] == "batch":
            for event in message["events"]:
                self.handle_message(event)
        elif message["type"] == "error":
            self.errors.append(message["error_code"])

    async def subscribe(self, event_types):
        await self.ws.send(json.dumps({"type": "subscribe", "data": {"event_types": event_types}}))

    async def close(self):
        self.reader.cancel()
        await self.ws.close()


async def eventually(condition, timeout=15):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def publish(server, token, event_type, data, **extra):
    status, body = server.request(
        "POST", "/api/realtime/publish/", {"event_type": event_type, "data": data, **extra}, token
    )
    assert status == 201, body


async def test_threatlens_example_client_gets_what_it_expects(
    running_server, alice, carol, token_for
):
    server = running_server()
    client = ThreatLensClient(f"{server.ws_url}/ws?token={token_for(alice)}")
    await client.connect()
    await client.subscribe(["security_event", "system_status"])
    await client.send({"type": "set_filter", "data": {"min_priority": 7}})
    # The example client does not wait for replies; the test does, so that the publishes
    # below come after the subscription and the filter are in force, however loaded the
    # machine.
    assert await eventually(lambda: "filter_updated" in client.types)
    admin = token_for(carol)
    await asyncio.to_thread(
        publish, server, admin, "security_event", {"event_id": "low", "severity": 3}, priority=3
    )
    await asyncio.to_thread(
        publish, server, admin, "security_event", {"event_id": "high", "severity": 9}, priority=9
    )
    await client.send({"type": "no_such_type"})
    high = ("security", {"event_id": "high", "severity": 9})
    error = ("error", "Unknown message type: no_such_type")
    # The in-process monitors' status events may come first: wait for these two.
    assert await eventually(lambda: high in client.received and error in client.received)
    # "low" was published first, so it would be here by now had the filter let it in.
    assert all(
        item[1].get("event_id") != "low" for item in client.received if item[0] == "security"
    )
    await client.close()


async def test_unified_example_service_gets_events_by_type(running_server, alice, carol, token_for):
    server = running_server()
    service = UnifiedWebSocketService()
    zones = []
    service.on("zone_created", zones.append)
    await service.connect(server.ws_url, token_for(alice))
    await service.subscribe(["zone_created", "no_such_event"])
    assert await eventually(lambda: "subscription_updated" in service.types)
    await asyncio.to_thread(
        publish,
        server,
        token_for(carol),
        "zone_created",
        {"zone_id": "1", "zone_name": "example.com", "action": "created"},
        recipients={"users": [alice.pk]},
    )
    assert await eventually(lambda: zones)
    assert zones[0]["zone_name"] == "example.com"
    assert "SUBSCRIPTION_FAILED" in service.errors
    await service.close()


def received_close_code(closed):
    return closed.value.rcvd.code if closed.value.rcvd is not None else 1006


def expected_close_code(kind, code):
    """Under daphne, codes other than 1000 and 3000-4999 reach the client only with the
    `daphne_close_codes` fast path; without it (make pytest-plain) autobahn refuses them,
    and the socket closes with the code's stand-in (4013 for 1013, docs/servers.md)."""
    from realtime import servers

    if kind == "daphne" and not servers.enabled("daphne_close_codes"):
        return servers.close_code_stand_in(code) or code
    return code


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
@pytest.mark.parametrize("path, code", [("/ws?token=bad", 1008), ("/ws/bad!id", 1003)])
async def test_documented_close_codes_reach_real_clients(running_server, kind, path, code):
    server = running_server(kind)
    async with websockets.connect(f"{server.ws_url}{path}") as socket:
        error = json.loads(await socket.recv())
        assert error["type"] == "error"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    assert received_close_code(closed) == expected_close_code(kind, code)


async def test_connection_limit_closes_with_1013_over_daphne(running_server, alice, token_for):
    server = running_server("daphne", REALTIME_MAX_CONNECTIONS_PER_USER="1")
    async with websockets.connect(f"{server.ws_url}/ws?token={token_for(alice)}") as first:
        assert json.loads(await first.recv())["type"] == "connection_established"
        async with websockets.connect(f"{server.ws_url}/ws?token={token_for(alice)}") as second:
            assert json.loads(await second.recv())["error_code"] == "CONNECTION_LIMIT"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await second.recv()
    assert received_close_code(closed) == expected_close_code("daphne", 1013)


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_sigterm_closes_sockets_with_1012_and_exits(running_server, alice, token_for, kind):
    server = running_server(kind)
    async with websockets.connect(f"{server.ws_url}/ws?token={token_for(alice)}") as socket:
        greeting = json.loads(await socket.recv())
        assert greeting["type"] == "connection_established", greeting
        started = asyncio.get_running_loop().time()
        server.process.terminate()
        notice = json.loads(await socket.recv())
        while notice["type"] == "event":  # live events sent before it (the monitors')
            notice = json.loads(await socket.recv())
        assert notice["type"] == "server_shutdown", notice
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    assert received_close_code(closed) == expected_close_code(kind, 1012)
    # The bound: REALTIME_SHUTDOWN_TIMEOUT (5 s) for the sockets, then the server's own stop.
    await asyncio.to_thread(server.process.wait, 20)
    assert asyncio.get_running_loop().time() - started < 20


@pytest.mark.parametrize("compression", ["deflate", None])
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_frames_larger_than_one_socket_write_arrive_whole_and_in_order(
    running_server, kind, compression, alice, carol, token_for
):
    """A frame over Twisted's 128 KiB send limit leaves part of itself in daphne's buffer
    (realtime/servers/daphne.py), one over the transport's high-water mark holds back
    uvicorn's writes: the frames after it must queue behind it, whether the hub writes
    them to the socket itself (no compression: realtime/servers/) or through the
    server's ASGI send (uvicorn compresses when the client asks)."""
    server = running_server(kind)
    service = UnifiedWebSocketService()
    zones = []
    service.on("zone_created", zones.append)
    await service.connect(server.ws_url, token_for(alice), compression=compression)
    await service.subscribe(["zone_created"])
    assert await eventually(lambda: "subscription_updated" in service.types)
    sizes = [300_000, 10, 200_000, 10, 10]
    for number, size in enumerate(sizes):
        await asyncio.to_thread(
            publish,
            server,
            token_for(carol),
            "zone_created",
            {"zone_id": str(number), "zone_name": "example.com", "notes": "x" * size},
            recipients={"users": [alice.pk]},
        )
    assert await eventually(lambda: len(zones) == len(sizes))
    assert [zone["zone_id"] for zone in zones] == ["0", "1", "2", "3", "4"]
    assert [len(zone["notes"]) for zone in zones] == sizes
    await service.close()
