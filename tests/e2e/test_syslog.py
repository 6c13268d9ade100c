"""Syslog into a real server process: a line sent over TCP or UDP reaches a subscribed
socket as `security_event`."""

import asyncio
import json
import socket

import pytest
import websockets

from tests.e2e.live_server import free_port
from tests.waiting import until

pytestmark = pytest.mark.e2e

TRAVERSAL = (
    "<190>1 2025-03-10T14:02:11Z web01 nginx - - - 203.0.113.77 - - "
    '[10/Mar/2025:14:02:11 +0000] "GET /static/../../../../etc/passwd HTTP/1.1" 404 162 "-" '
    '"Mozilla/5.0"'
)


async def security_events(ws, count, timeout=20.0):
    """The data of the next `count` security_event frames (batch frames opened)."""
    found = []
    async with asyncio.timeout(timeout):
        while len(found) < count:
            message = json.loads(await ws.recv())
            frames = message["events"] if message["type"] == "batch" else [message]
            found += [frame["data"] for frame in frames if frame["type"] == "security_event"]
    return found


@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
async def test_a_line_sent_over_syslog_reaches_a_subscribed_socket(
    running_server, alice, token_for, kind
):
    tcp_port, udp_port = free_port(), free_port()
    server = running_server(
        kind,
        SYSLOG_IN_PROCESS="true",
        SYSLOG_TCP_PORT=str(tcp_port),
        SYSLOG_UDP_PORT=str(udp_port),
    )
    async with websockets.connect(f"{server.ws_url}/ws?token={token_for(alice)}") as ws:
        await ws.send(
            json.dumps({"type": "subscribe", "data": {"event_types": ["security_event"]}})
        )
        while json.loads(await ws.recv())["type"] != "subscription_updated":
            pass

        # The receiver starts with the server; the port answers once it listens.
        async def receiver_listening():
            try:
                return await asyncio.open_connection("127.0.0.1", tcp_port)
            except ConnectionRefusedError:
                return None

        _reader, writer = await until(receiver_listening, "the syslog receiver listens", timeout=10)
        writer.write(b"%d %s" % (len(TRAVERSAL), TRAVERSAL.encode()))
        await writer.drain()
        [event] = await security_events(ws, 1)
        assert event["rule_id"] == "web_path_traversal"
        assert event["source"] == "nginx" and event["src_ip"] == "203.0.113.77"
        writer.close()

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(
                TRAVERSAL.replace("203.0.113.77", "203.0.113.78").encode(), ("127.0.0.1", udp_port)
            )
        [event] = await security_events(ws, 1)
        assert event["src_ip"] == "203.0.113.78"
