"""The benchmark's own parts: the clients' frame reader and counting, and the figures."""

import json

import pytest

from bench import clients, report


def server_frame(payload, *, opcode=clients.OP_TEXT, fin=True):
    """An unmasked server frame, with the 7-bit, 16-bit or 64-bit length form."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        header = bytes([first, size])
    elif size < 65536:
        header = bytes([first, 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([first, 127]) + size.to_bytes(8, "big")
    return header + payload


def event(seq, sent_at=1000.0):
    return {
        "type": "event",
        "event_type": "health_update",
        "data": {"bench_seq": seq, "sent_at": sent_at, "pad": "x"},
        "timestamp": "2026-01-01T00:00:00Z",
        "id": str(seq + 1),
        "priority": "normal",
    }


def encoded(frame):
    return json.dumps(frame, separators=(",", ":")).encode()


def batch(*seqs):
    return encoded({"type": "batch", "events": [event(s) for s in seqs], "batch_id": "b"})


def open_client(stats):
    """A FastClient past its handshake, reading straight into `stats`."""
    client = clients.FastClient("ws://127.0.0.1:1/ws", 0, stats)
    client.open = True
    client.waiter = None
    return client


@pytest.fixture
def stats():
    stats = clients.Stats([0], 1, verify_frames=10**9)
    stats.phase = clients.Phase(10, 1, 1)
    return stats


async def test_single_events_and_batches_are_both_counted_event_by_event(stats):
    client = open_client(stats)
    client.data_received(server_frame(encoded(event(0))) + server_frame(batch(1, 2, 3)))
    phase = stats.phase
    assert phase.received == [4]
    assert phase.frames == 2
    assert phase.batch_frames == 1
    assert len(phase.latencies[0]) == 4
    assert phase.verify_errors == 0


async def test_frames_split_anywhere_across_reads_are_reassembled(stats):
    client = open_client(stats)
    wire = server_frame(batch(*range(10))) + server_frame(encoded(event(3)))
    for offset in range(0, len(wire), 7):
        client.data_received(wire[offset : offset + 7])
    assert stats.phase.received == [10]
    assert stats.phase.duplicates == [1]


async def test_a_fragmented_message_counts_once_it_is_complete(stats):
    client = open_client(stats)
    text = batch(4, 5)
    client.data_received(server_frame(text[:20], fin=False))
    assert stats.phase.received == [0]
    client.data_received(server_frame(text[20:], opcode=clients.OP_CONT))
    assert stats.phase.received == [2]


async def test_long_frames_use_the_extended_lengths(stats):
    stats.phase = clients.Phase(2000, 1, 1)
    client = open_client(stats)
    client.data_received(server_frame(batch(*range(300))))  # > 65535 bytes
    client.data_received(server_frame(batch(*range(300, 310))))  # 126..65535 bytes
    assert stats.phase.received == [310]


async def test_replies_and_sequence_numbers_outside_the_phase_are_not_events(stats):
    client = open_client(stats)
    client.data_received(server_frame(b'{"type":"pong","data":{}}'))
    client.data_received(server_frame(encoded(event(-1))) + server_frame(encoded(event(99))))
    assert stats.phase.received == [0]
    assert stats.phase.other_frames == 1
    assert stats.phase.unexpected == [2]


async def test_a_frame_the_fast_path_misreads_is_a_verify_error(stats):
    client = open_client(stats)
    client.data_received(server_frame(b'{"type":"event","data":{"bench_seq":1,"sent_at":1.0'))
    assert stats.phase.verify_errors == 1


def test_loss_is_counted_per_client_against_what_was_published():
    published = {
        "published": [0, 1, 2],
        "errors": {},
        "started": 0.0,
        "finished": 1.0,
        "call_seconds": [0.01, 0.01, 0.01],
        "rate": 3.0,
    }
    worker = {
        "connected": [True, True, False],
        "open": [True, True, False],
        "server_index": [0, 0, 0],
        "received": [3, 2, 0],
        "duplicates": [0, 0, 0],
        "unexpected": [0, 0, 0],
        "seen": [bytes([1, 1, 1]), bytes([1, 0, 1]), bytes(3)],
        "latencies": [clients.array.array("d", [0.001] * 5).tobytes()],
        "frames": 5,
        "batch_frames": 0,
        "other_frames": 0,
        "verify_errors": 0,
        "first_at": 0.5,
        "last_at": 1.0,
        "close_codes": {},
    }
    figures = report.phase_figures("steady", published, [worker], 1)
    assert figures["expected"] == 6
    assert figures["received"] == 5
    assert figures["lost"] == 1
    assert figures["lossy_clients"] == 1
    assert figures["delivered_per_second"] == 5.0
    assert figures["latency"]["p99_ms"] == pytest.approx(1.0)


def test_percentiles_are_nearest_rank():
    values = list(range(1, 101))
    assert report.percentile(values, 0.5) == 50
    assert report.percentile(values, 0.99) == 99
    assert report.percentile(values, 1.0) == 100
    assert report.percentile([], 0.5) is None
