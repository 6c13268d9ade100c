"""The outbound queue of one connection: priorities, batching, shedding, a stuck client.

Driven directly with a fake socket, so that a client that stops reading can be simulated
exactly (a real test client always reads)."""

import asyncio

import pytest

from tests.realtime.fakes import FakeSocket, connection, event
from tests.waiting import until


def delivered(socket, count):
    """A condition for `until`: the socket has `count` events (frames or batched)."""
    return lambda: len(socket.events()) >= count


def numbers(socket):
    return [e["data"]["n"] for e in socket.events()]


async def test_an_idle_connection_sends_at_once_and_alone():
    socket = FakeSocket()
    conn = connection(socket, batch_window=10)
    conn.offer(event(n=1))
    assert [f["type"] for f in socket.frames] == ["event"]
    conn.stop()


async def test_an_idle_connection_is_written_in_the_fan_out_pass_itself():
    socket = FakeSocket()
    conn = connection(socket, batch_window=10)
    conn.offer(event(n=1))
    # Nothing awaited: the frame is with the server already, no task was woken for it.
    assert [f["data"]["n"] for f in socket.frames] == [1]
    assert conn.queue_depth == 0
    conn.stop()


async def test_a_send_that_must_wait_holds_the_queue_and_order_is_kept():
    socket = FakeSocket()
    socket.gate.clear()  # the socket's buffer is full
    conn = connection(socket, batch_window=0)
    for n in range(5):
        conn.offer(event(n=n))
    assert socket.frames == []
    assert conn.queue_depth == 4  # the first is in flight
    socket.gate.set()
    await until(delivered(socket, 5), "the held send and the queue go out", interval=0.005)
    assert numbers(socket) == [0, 1, 2, 3, 4]
    assert conn.queue_depth == 0
    conn.stop()


async def test_a_socket_gone_mid_write_stops_the_connection_quietly():
    class GoneSocket:
        async def send(self, message):
            raise ConnectionResetError("gone")

    conn = connection(GoneSocket())
    conn.offer(event(n=1))
    assert conn.closed
    conn.offer(event(n=2))  # the consumer's disconnect detaches it; until then, nothing
    assert conn.queue_depth == 0


async def test_a_burst_after_a_frame_is_one_batch_within_the_window():
    socket = FakeSocket()
    conn = connection(socket, batch_window=0.1)
    conn.offer(event(n=0))
    for n in range(1, 6):
        conn.offer(event(n=n))
    assert len(socket.frames) == 1  # the burst waits for the window
    assert conn.queue_depth == 5
    await until(lambda: len(socket.frames) == 2, "the window ends", interval=0.005)
    assert socket.frames[1]["type"] == "batch"
    assert [e["data"]["n"] for e in socket.frames[1]["events"]] == [1, 2, 3, 4, 5]
    conn.stop()


async def test_a_sustained_burst_stretches_the_window_and_a_lone_event_resets_it():
    socket = FakeSocket()
    conn = connection(socket, batch_window=0.2)
    conn.offer(event(n=0))  # idle: at once
    conn.offer(event(n=1))
    conn.offer(event(n=2))
    # The first window ends: one batch of 1 and 2.
    await until(lambda: len(socket.frames) == 2, "the first window ends", interval=0.005)
    conn.offer(event(n=3))
    conn.offer(event(n=4))
    # A burst is on, so this window is 0.4 s, not 0.2 s. Time passing is what is tested:
    # a sleep past where the normal window would have ended, then nothing was sent.
    await asyncio.sleep(0.25)
    assert len(socket.frames) == 2
    await until(lambda: len(socket.frames) == 3, "the stretched window ends", interval=0.005)
    assert [e["data"]["n"] for e in socket.frames[2]["events"]] == [3, 4]
    # Quiet for longer than the stretched window (the thing tested, so a sleep): the
    # next event goes at once, alone, and the window is reset.
    await asyncio.sleep(0.9)
    conn.offer(event(n=5))
    assert socket.frames[3]["data"]["n"] == 5
    conn.offer(event(n=6))
    conn.offer(event(n=7))
    await until(lambda: len(socket.frames) == 5, "the reset window ends", interval=0.005)
    assert [e["data"]["n"] for e in socket.frames[4]["events"]] == [6, 7]
    conn.stop()


async def test_a_full_frame_of_backlog_goes_without_waiting_for_the_window():
    socket = FakeSocket()
    conn = connection(socket, batch_window=10)
    conn.offer(event(n=0))  # idle: at once; the next ones would wait 10 s
    for n in range(1, 251):
        conn.offer(event(n=n))
    # Two full frames went at once; the last 50 wait for the window.
    assert [len(f.get("events", [f])) for f in socket.frames] == [1, 100, 100]
    assert conn.queue_depth == 50
    conn.stop()


async def test_typed_events_are_never_batched():
    socket = FakeSocket()
    conn = connection(socket, batch_window=0.05)
    conn.offer(event("security_event", n=0))
    for n in range(1, 4):
        conn.offer(event("security_event", n=n))
    await until(delivered(socket, 4), "the window ends", interval=0.005)
    assert [f["type"] for f in socket.frames] == ["security_event"] * 4
    conn.stop()


async def test_priority_order_across_a_burst_and_order_within_a_priority():
    socket = FakeSocket()
    conn = connection(socket, batch_window=0.05)
    conn.offer(event(n="first"))
    for n, priority in [(1, 3), (2, 8), (3, 5), (4, 8), (5, 3)]:
        conn.offer(event(priority=priority, n=n))
    await until(delivered(socket, 6), "the window ends", interval=0.005)
    assert numbers(socket)[1:] == [2, 4, 3, 1, 5]
    conn.stop()


async def test_delivery_bounds_hold_for_every_priority_when_the_client_reads():
    """Upper bounds: high 1 s, normal 5 s, low 30 s; here all go with the end of the first
    batch window: the first at once, the other two in the window's one batch (no priority
    waits for a later window)."""
    socket = FakeSocket()
    conn = connection(socket, batch_window=0.05)
    for priority in (2, 5, 8):
        conn.offer(event(priority=priority))
    await until(delivered(socket, 3), "every priority is delivered", interval=0.005)
    assert [frame["type"] for frame in socket.frames] == ["event", "batch"]
    conn.stop()


async def test_critical_event_skips_the_batch_window():
    socket = FakeSocket()
    conn = connection(socket, batch_window=5)
    conn.offer(event(n=0))
    conn.offer(event(n=1))  # normal: waits for the 5 s window
    conn.offer(event("security_alert", n=2))  # critical: goes now, and takes n=1 along
    await until(delivered(socket, 3), "the critical event goes", interval=0.005)
    assert numbers(socket) == [0, 2, 1]
    conn.stop()


async def test_full_queue_sheds_the_lowest_priority_oldest_first_and_counts_it():
    socket = FakeSocket()
    socket.gate.clear()  # the client stops reading
    conn = connection(socket, capacity=4, batch_window=0)
    conn.offer(event(n="in flight"))
    for n, priority in [("low-1", 2), ("low-2", 2), ("high-1", 8), ("normal", 5)]:
        conn.offer(event(priority=priority, n=n))
    conn.offer(event(priority=8, n="high-2"))  # full: low-1 goes
    conn.offer(event(priority=1, n="debug"))  # lower than everything queued: itself goes
    assert conn.dropped == 2
    assert conn.queue_depth == 4
    socket.gate.set()
    await until(delivered(socket, 5), "the client reads again", interval=0.005)
    assert numbers(socket) == ["in flight", "high-1", "high-2", "normal", "low-2"]
    assert conn.stats()["events_dropped"] == 2
    conn.stop()


async def test_critical_event_that_cannot_be_queued_closes_instead_of_dropping():
    socket = FakeSocket()
    socket.gate.clear()
    overflowed = []
    conn = connection(socket, capacity=2, batch_window=0, overflowed=overflowed)
    conn.offer(event(n="in flight"))
    conn.offer(event("security_alert", n=1))
    conn.offer(event("security_alert", n=2))
    assert not overflowed
    conn.offer(event("security_alert", n=3))
    assert overflowed == [conn]
    conn.stop()


async def test_a_stuck_client_does_not_delay_another():
    stuck, reader = FakeSocket(), FakeSocket()
    stuck.gate.clear()
    slow, fast = connection(stuck, capacity=10), connection(reader)
    for n in range(50):
        shared = event(n=n)
        slow.offer(shared)
        fast.offer(shared)
        await asyncio.sleep(0)  # a fan-out pass per event: the loop runs in between
    await until(delivered(reader, 50), "the reader gets every event", interval=0.005)
    assert numbers(reader) == list(range(50))
    assert slow.dropped > 0
    slow.stop()
    fast.stop()


async def test_replay_seam_skips_what_the_replay_sent():
    socket = FakeSocket()
    conn = connection(socket, batch_window=0)
    conn.pause()
    replayed, live = event(n="both"), event(n="live only")
    conn.offer(replayed)
    conn.offer(live)
    assert socket.frames == []  # held while paused
    conn.resume({replayed.id})
    await until(delivered(socket, 1), "the held live event goes", interval=0.005)
    assert numbers(socket) == ["live only"]
    conn.stop()


async def test_a_live_copy_of_a_replayed_event_arriving_after_the_seam_is_skipped():
    socket = FakeSocket()
    conn = connection(socket, batch_window=0)
    conn.pause()
    replayed = event(n="replayed")
    conn.resume({replayed.id})
    conn.offer(replayed)  # its live copy, late (through Redis, or the event table)
    conn.offer(event(n="live"))
    await until(delivered(socket, 1), "the live event goes", interval=0.005)
    assert numbers(socket) == ["live"]
    conn.stop()


@pytest.mark.parametrize("queued, latest, expected", [([], 40, 40), ([7, 9], 40, 6)])
async def test_resume_position_leaves_queued_events_for_the_replay(queued, latest, expected):
    socket = FakeSocket()
    socket.gate.clear()
    conn = connection(socket, batch_window=10)
    conn.pause()
    for event_id in queued:
        item = event()
        item.id = event_id
        conn.push(item)
    assert conn.resume_position(latest) == expected
    conn.stop()
