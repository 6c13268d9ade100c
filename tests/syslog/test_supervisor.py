"""The server's side of the syslog child process (`incidents.syslog.supervisor`): a real
`run_syslog --supervised` on the test database, its figures shown by this process."""

import asyncio

import pytest

from incidents import ingest_metrics
from incidents.syslog.server import ReceiverConfig
from incidents.syslog.supervisor import SyslogChildProcess
from tests.e2e.live_server import database_url, free_port
from tests.syslog.helpers import stored
from tests.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def child(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url())
    monkeypatch.delenv("REDIS_URL", raising=False)
    started = []

    def start(port):
        started.append(SyslogChildProcess(ReceiverConfig(tcp_port=port), first_delay=0.1))
        return started[-1].start()

    yield start
    for process in started:
        process.stop_sync()


async def test_the_childs_receiver_and_ingest_figures_are_this_processs(child):
    port = free_port()
    process = child(port)
    assert process.health().status == "warning"  # starting
    await until(lambda: process.stats is not None, "the child reports", timeout=20)
    health = process.health()
    assert health.status == "healthy"
    assert health.metrics["listening"] == f"tcp 127.0.0.1:{port}"
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"<13>Mar 10 14:02:11 web01 app: from the child\n")
    await writer.drain()
    writer.close()
    assert await stored(lambda lines: any(line.endswith("from the child") for line in lines))
    await until(
        lambda: (
            ingest_metrics.snapshot()["lines_processed"] >= 1
            and process.health().metrics["messages_received"] == 1
        ),
        "the child's figures reach this process",
        timeout=10,
    )
    assert ingest_metrics.snapshot()["lines_received"] >= 1
    await process.stop()
    assert (
        ingest_metrics.snapshot()["lines_received"]
        == ingest_metrics.own_snapshot()["lines_received"]
    )


async def test_a_child_that_cannot_listen_is_restarted_with_its_exit_code_logged(child, caplog):
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        process = child(port)
        await until(lambda: len(process.exit_codes) >= 2, "two exits", timeout=30)
        assert process.exit_codes[:2] == [1, 1]
        assert "exited with code 1" in caplog.text
        assert process.health().status == "warning"
        holder.close()
        await until(lambda: process.stats is not None, "it listens once free", timeout=30)
    finally:
        holder.close()


def test_figures_of_ended_children_are_carried_so_counters_never_go_back():
    process = SyslogChildProcess(ReceiverConfig(tcp_port=1))
    process._ingest = {"lines_received": 5, "lines_processed": 4, "queue_depth": 1}

    class Ended:
        stdin = stdout = type("Closed", (), {"close": lambda self: None})()

    process._ended(Ended(), -9)
    process._ingest = {"lines_received": 2, "lines_processed": 2, "queue_depth": 0}
    figures = process.ingest_figures()
    assert figures["lines_received"] == 7 and figures["lines_processed"] == 6
    assert figures["queue_depth"] == 0
    assert process.exit_codes == [-9]


def test_labelled_counters_of_ended_children_are_carried_too():
    process = SyslogChildProcess(ReceiverConfig(tcp_port=1))
    process._ingest = {
        "lines_malformed": 3,
        "lines_malformed_by_transport": {"tcp": 2, "udp": 1},
        "state_evictions": 4,
        "state_by_rule": {"ssh_bruteforce": {"keys": 10, "evictions": 4}},
    }

    class Ended:
        stdin = stdout = type("Closed", (), {"close": lambda self: None})()

    process._ended(Ended(), 0)
    process._ingest = {
        "lines_malformed": 1,
        "lines_malformed_by_transport": {"tcp": 1},
        "state_evictions": 0,
        "state_by_rule": {"ssh_bruteforce": {"keys": 2, "evictions": 0}},
    }
    figures = process.ingest_figures()
    assert figures["lines_malformed"] == 4
    assert figures["lines_malformed_by_transport"] == {"tcp": 3, "udp": 1}
    assert figures["state_evictions"] == 4
    # Evictions only grow; the keys are the running child's (the ended one's died with it).
    assert figures["state_by_rule"] == {"ssh_bruteforce": {"keys": 2, "evictions": 4}}
