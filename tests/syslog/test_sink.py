"""The interim sink: received lines stored as raw logs and processed by the pipeline."""

import time

import pytest

from incidents.models import RawLog, RawLogStatus, SecurityEvent
from incidents.syslog.sink import RawLogSink, ReceivedLine, origin_name
from tests.syslog.helpers import eventually, in_thread

pytestmark = pytest.mark.django_db(transaction=True)


def line(text, *, source="syslog", transport="tcp", peer="192.0.2.1"):
    return ReceivedLine(text, source, time.time(), transport, peer)


def ssh_failure(n):
    return (
        f"<38>Mar 10 14:02:{n % 60:02d} web01 sshd[811]: Failed password for root from "
        f"203.0.113.45 port {40000 + n} ssh2"
    )


@pytest.fixture
def raw_sink():
    sink = RawLogSink(max_lines=50)
    yield sink
    sink.close()


async def test_lines_are_stored_per_source_and_peer_and_processed(raw_sink):
    await raw_sink.put([line(ssh_failure(n), source="sshd") for n in range(12)])
    await raw_sink.put([line("<13>Mar 10 14:02:11 h cron: x", peer="192.0.2.2")])
    assert await eventually(lambda: raw_sink.stats()["processed"] == 13, timeout=20)
    logs = await in_thread(
        lambda: list(RawLog.objects.order_by("id").values("source", "file_name", "status"))
    )
    assert {(log["source"], log["file_name"]) for log in logs} == {
        ("sshd", "tcp://192.0.2.1"),
        ("syslog", "tcp://192.0.2.2"),
    }
    assert {log["status"] for log in logs} == {RawLogStatus.COMPLETED}
    # Twelve failures from one address: the brute-force rule fired.
    assert await in_thread(SecurityEvent.objects.exists)


async def test_put_durable_returns_once_the_raw_log_is_committed(raw_sink):
    await raw_sink.put_durable([line("<13>durable one", transport="relp")])
    stored = await in_thread(
        lambda: RawLog.objects.filter(file_name=origin_name("relp", "192.0.2.1")).count()
    )
    assert stored == 1


async def test_recent_durable_lines_are_the_peers_last_lines_newest_first(raw_sink):
    await raw_sink.put_durable([line(f"<13>m{n}", transport="relp") for n in range(3)])
    await raw_sink.put_durable([line("<13>m3", transport="relp")])
    await raw_sink.put_durable([line("<13>other", transport="relp", peer="192.0.2.9")])
    recent = await raw_sink.recent_durable_lines(transport="relp", peer="192.0.2.1", limit=3)
    assert recent == ["<13>m3", "<13>m2", "<13>m1"]


async def test_offer_takes_what_fits_and_counts_the_rest_as_dropped():
    sink = RawLogSink(max_lines=5)
    try:
        # One call: the room is what is free at that moment.
        assert sink.offer([line(f"<13>{n}") for n in range(8)]) == 5
        assert sink.stats()["dropped"] == 3
    finally:
        sink.close()


async def test_a_closed_sink_refuses_lines():
    sink = RawLogSink()
    sink.close()
    assert sink.offer([line("<13>late")]) == 0
    with pytest.raises(RuntimeError):
        await sink.put([line("<13>late")])


async def test_lines_trickling_in_are_stored_as_one_batch_within_the_batch_wait():
    """Time-bounded batches: lines arriving one by one within `batch_wait` become one raw
    log (one transaction, one processing run), not one each."""
    sink = RawLogSink(max_lines=50, batch_wait=1.0)
    try:
        for n in range(5):
            assert sink.offer([line(f"<13>Mar 10 14:02:1{n} h cron: tick {n}")]) == 1
        assert await eventually(lambda: sink.stats()["processed"] == 5, timeout=20)
        assert await in_thread(RawLog.objects.count) == 1
    finally:
        sink.close()


async def test_a_full_batch_does_not_wait_for_the_batch_wait():
    sink = RawLogSink(max_lines=50, batch_lines=3, batch_wait=30.0)
    try:
        sink.offer([line(f"<13>Mar 10 14:02:1{n} h cron: tick {n}") for n in range(3)])
        assert await eventually(lambda: sink.stats()["processed"] == 3, timeout=20)
    finally:
        sink.close()


async def test_a_durable_sender_is_not_kept_waiting_for_the_batch_wait():
    sink = RawLogSink(max_lines=50, batch_wait=30.0)
    try:
        started = time.monotonic()
        await sink.put_durable([line("<13>durable one", transport="relp")])
        # Far below the 30 s wait: stored at once, because a RELP sender awaits the ack.
        assert time.monotonic() - started < 15
    finally:
        sink.close()
