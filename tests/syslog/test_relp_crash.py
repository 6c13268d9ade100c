"""RELP across a receiver killed mid-stream: a real `manage.py run_syslog` process is
SIGKILLed while a sender streams, then started again; the sender resends what was not
answered, and every line sent is stored exactly once."""

import asyncio
import random
from collections import Counter

import pytest

from incidents.syslog.sink import origin_name
from tests.e2e.live_server import free_port
from tests.syslog.helpers import in_thread, stored, stored_lines
from tests.syslog.relp_client import RelpClient

pytestmark = pytest.mark.e2e

LINES = 3000


def message(n):
    # As rsyslog forwards: RFC 5424 with microseconds, so no two messages are alike.
    return (
        b"<38>1 2025-03-10T14:%02d:%02d.%06dZ web01 sshd 811 - - Failed password for root from "
        b"203.0.113.%d port %d ssh2" % (n // 3600 % 60, n // 60 % 60, n, n % 250, 20000 + n)
    )


async def reconnect(client, timeout=30.0):
    """Connect again (sending the unanswered frames first), while the receiver restarts."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await client.connect()
        except (ConnectionError, asyncio.IncompleteReadError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_every_line_is_stored_once_across_a_receiver_killed_mid_stream(run_syslog):
    port = free_port()
    arguments = ("--relp-port", str(port))
    server = run_syslog(*arguments)
    relp_lines = origin_name("relp", "127.0.0.1")
    client = await RelpClient("127.0.0.1", port, window=128).connect()

    # 1. Stored but unanswered: the sender never read the answers to these 100 frames
    # when the receiver dies, so it sends them all again.
    for n in range(100):
        await client.send(message(n), read_answers=False)
    assert await stored(lambda lines: len(lines) == 100, file_name=relp_lines)
    server.kill()
    server.wait()
    server = run_syslog(*arguments)
    await reconnect(client)

    # 2. Killed at a random point of a steady stream, answers in flight.
    kill_at = random.randint(800, 2200)
    sent = 100
    while sent < LINES or client.unacked:
        try:
            if sent < LINES:
                await client.send(message(sent))
                sent += 1
            else:
                await client.wait_all_answered()
            if sent == kill_at and server.poll() is None:
                server.kill()
                server.wait()
                server = run_syslog(*arguments)
        except (ConnectionError, asyncio.IncompleteReadError):
            await reconnect(client)
    await client.close()

    lines = await in_thread(stored_lines, relp_lines)
    counts = Counter(line.encode() for line in lines)
    missing = [n for n in range(LINES) if counts[message(n)] == 0]
    twice = [n for n in range(LINES) if counts[message(n)] > 1]
    assert (missing, twice) == ([], [])
    assert len(lines) == LINES
