"""The syslog receiver in the server's supervised child process (SYSLOG_PROCESS=child, the
default): real servers, real sockets, real processes."""

import asyncio
import json
import os
import signal
import time
import urllib.request
from datetime import datetime

import psutil
import pytest
import websockets

from incidents.models import RawLog
from realtime.models import Event
from tests.e2e.live_server import free_port
from tests.e2e.test_syslog import TRAVERSAL
from tests.syslog.helpers import in_thread
from tests.waiting import until, wait_until

pytestmark = pytest.mark.e2e

SLOW_POLL = "30"  # seconds: only the child's wake-up can bring an event sooner


def line_for(address):
    text = TRAVERSAL.replace("203.0.113.77", address)
    return b"%d %s" % (len(text), text.encode())


def syslog_children(server):
    """The server's live `run_syslog --supervised` child processes."""
    found = []
    for child in psutil.Process(server.process.pid).children():
        try:
            if "run_syslog" in child.cmdline():
                found.append(child)
        except psutil.Error:  # gone, or a zombie not yet reaped
            pass
    return found


async def connected(port):
    """A TCP connection to the child's receiver, once it listens."""

    async def attempt():
        try:
            return await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return None

    _reader, writer = await until(attempt, "the syslog child listens", timeout=20)
    return writer


async def subscribed(server, token):
    ws = await websockets.connect(f"{server.ws_url}/ws?token={token}")
    await ws.send(json.dumps({"type": "subscribe", "data": {"event_types": ["security_event"]}}))
    while json.loads(await ws.recv())["type"] != "subscription_updated":
        pass
    return ws


async def first_security_event(ws, timeout=10.0):
    """(the event's data, seconds between its storing and its arrival here)."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            frames = message["events"] if message["type"] == "batch" else [message]
            for frame in frames:
                if frame["type"] == "security_event":
                    stored = datetime.fromisoformat(frame["timestamp"].replace("Z", "+00:00"))
                    return frame["data"], time.time() - stored.timestamp()


def child_server(running_server, tcp_port, **env):
    return running_server(
        "uvicorn",
        METRICS_PUBLIC="true",
        SYSLOG_IN_PROCESS="true",
        SYSLOG_TCP_PORT=str(tcp_port),
        SYSLOG_UDP_PORT="0",
        REALTIME_EVENT_POLL_INTERVAL=SLOW_POLL,
        **env,
    )


async def test_a_line_reaches_a_socket_at_once_through_the_childs_wake_up(
    running_server, alice, token_for
):
    port = free_port()
    server = child_server(running_server, port)
    [child] = await until(lambda: syslog_children(server), "the server starts its syslog child")
    ws = await subscribed(server, token_for(alice))
    try:
        writer = await connected(port)
        sent = time.monotonic()
        writer.write(line_for("203.0.113.80"))
        await writer.drain()
        event, lag = await first_security_event(ws)
        took = time.monotonic() - sent
        writer.close()
    finally:
        await ws.close()
    assert event["rule_id"] == "web_path_traversal" and event["src_ip"] == "203.0.113.80"
    # Stored by the child, delivered by the server's hub: well under the 30 s poll.
    assert lag < 0.4, f"{lag:.3f} s from the child's commit to the socket"
    assert took < 5, f"{took:.3f} s from the syslog line to the socket"
    origins = await in_thread(lambda: set(Event.objects.values_list("origin", flat=True)))
    assert any(f":{child.pid}:" in origin for origin in origins)

    # The child's figures are the server's: its /metrics count the line.
    def received_in_metrics():
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
            text = response.read().decode()
        return "threatlens_ingest_lines_received_total 1.0" in text.splitlines()

    await until(lambda: in_thread(received_in_metrics), "/metrics shows the child's line")


async def test_a_killed_child_is_started_again_and_the_next_line_is_detected(
    running_server, alice, token_for
):
    port = free_port()
    server = child_server(running_server, port)
    [child] = await until(lambda: syslog_children(server), "the server starts its syslog child")
    await connected(port)
    os.kill(child.pid, signal.SIGKILL)
    [again] = await until(
        lambda: [c for c in syslog_children(server) if c.pid != child.pid],
        "a new syslog child",
        timeout=20,
    )
    assert again.pid != child.pid
    ws = await subscribed(server, token_for(alice))
    try:
        writer = await connected(port)
        writer.write(line_for("203.0.113.81"))
        await writer.drain()
        event, _lag = await first_security_event(ws, timeout=20)
        writer.close()
    finally:
        await ws.close()
    assert event["src_ip"] == "203.0.113.81"
    assert "exited with code -9" in server.log_text()


async def test_stopping_the_server_stops_the_child_after_it_stored_what_it_received(
    running_server,
):
    port = free_port()
    server = child_server(running_server, port)
    [child] = await until(lambda: syslog_children(server), "the server starts its syslog child")
    writer = await connected(port)
    writer.write(line_for("203.0.113.82"))
    await writer.drain()
    writer.close()
    # Within the sink's 0.2 s batch wait: the line is still queued when the server stops.
    await asyncio.sleep(0.05)
    server.stop()
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    contents = await in_thread(lambda: "".join(RawLog.objects.values_list("content", flat=True)))
    assert "203.0.113.82" in contents


def test_the_child_exits_when_the_server_is_killed(running_server):
    port = free_port()
    server = child_server(running_server, port)
    [child] = wait_until(lambda: syslog_children(server), "the server starts its syslog child")
    wait_until(lambda: len(child.net_connections("tcp")) > 0, "the child listens", timeout=20)
    server.process.kill()
    server.process.wait()
    child.wait(15)  # raises psutil.TimeoutExpired while it outlives the server
