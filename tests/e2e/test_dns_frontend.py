"""The DNS management server's frontend over real sockets: its path, its subscribe, its
flat envelope; and an unknown path refused before the handshake on both servers."""

import asyncio
import json

import pytest
import websockets

pytestmark = pytest.mark.e2e


class DnsFrontendSocket:
    """How the DNS frontend's socket service talks: `/api/websocket/ws?token=`, top-level
    `event_types`, handlers keyed on `message.type`; it never answers server pings."""

    def __init__(self):
        self.handlers = {}
        self.types = []

    async def connect(self, base, token):
        self.ws = await websockets.connect(f"{base}/api/websocket/ws?token={token}")
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        async for text in self.ws:
            message = json.loads(text)
            self.types.append(message["type"])
            for handler in self.handlers.get(message["type"], ()):
                handler(message)

    def on(self, event_type, handler):
        self.handlers.setdefault(event_type, []).append(handler)

    async def subscribe(self, event_types):
        await self.ws.send(json.dumps({"type": "subscribe", "event_types": event_types}))

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


async def test_a_zone_created_over_rest_reaches_the_dns_frontend(running_server, carol, token_for):
    server = running_server("uvicorn")
    token = token_for(carol)
    frontend = DnsFrontendSocket()
    zones = []
    frontend.on("zone_created", zones.append)
    await frontend.connect(server.ws_url, token)
    await frontend.subscribe(["zone_created"])
    assert await eventually(lambda: "subscription_updated" in frontend.types)
    status, body = await asyncio.to_thread(
        server.request,
        "POST",
        "/api/dns/zones/",
        {"name": "corp.example", "email": "h@corp.example"},
        token,
    )
    assert status == 201, body
    assert await eventually(lambda: zones)
    assert zones[0]["data"]["zone_name"] == "corp.example"
    assert zones[0]["priority"] in {"low", "normal", "high", "critical"}
    assert "batch" not in frontend.types and "event" not in frontend.types
    await frontend.close()


@pytest.mark.parametrize("kind, status", [("uvicorn", 404), ("daphne", 403)])
async def test_an_unknown_path_is_refused_without_a_traceback(running_server, kind, status):
    server = running_server(kind)
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        await websockets.connect(f"{server.ws_url}/api/websocket/nowhere?token=secret-value")
    assert refused.value.response.status_code == status
    log = server.log_text()
    assert "Traceback" not in log and "secret-value" not in log
