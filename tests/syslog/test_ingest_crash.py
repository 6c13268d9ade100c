"""A real `manage.py run_syslog` SIGKILLed mid-burst, then started again: every stored
line is processed once, and the stored events are exactly those a clean analysis of the
stored lines finds (none twice, none missing)."""

import socket
import threading
import time

import pytest

from bench.ingest_mix import generate
from incidents.models import Alert, RawLog, RawLogStatus, SecurityEvent
from incidents.pipeline.analyzer import Analyzer
from incidents.pipeline.parsers import parse_line, parser_for_hint
from incidents.pipeline.rules import load_rules
from incidents.pipeline.state import BoundedState
from tests.e2e.live_server import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UNFINISHED = [RawLogStatus.RECEIVED, RawLogStatus.PARSING, RawLogStatus.ANALYSIS]


def send_in_background(port, lines):
    payload = "".join(line.message + "\n" for line in lines).encode()

    def push():
        try:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(payload)
        except OSError:
            pass  # the receiver was killed: what it had not stored is lost (plain TCP)

    thread = threading.Thread(target=push, daemon=True)
    thread.start()
    return thread


def wait_until(predicate, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def lines_processed():
    return sum(RawLog.objects.values_list("lines_total", flat=True))


def expected_events():
    """A clean analysis of every stored line, in the order the lines were stored."""
    analyzer = Analyzer(load_rules(), BoundedState())
    found = []
    for raw_log in RawLog.objects.order_by("id"):
        hint = raw_log.source if parser_for_hint(raw_log.source) else raw_log.file_name
        for line in raw_log.content.split("\n"):
            if line.strip():
                drafts = analyzer.analyze(parse_line(line, source_hint=hint), source=raw_log.source)
                found += [(d.rule_id, d.correlation_key, d.timestamp, d.severity) for d in drafts]
    return sorted(found)


def test_a_receiver_killed_mid_burst_processes_every_stored_line_once_after_restart(run_syslog):
    port = free_port()
    env = {
        "RESUME_RAW_LOGS": "true",
        "RAW_LOG_RESUME_AFTER": "0",
        "LOG_PROCESSING_CHUNK_LINES": "50",
    }
    server = run_syslog("--tcp-port", str(port), env=env)
    sender = send_in_background(port, generate("attack-heavy", 6000, seed=5))

    # Killed while it processes: some chunks committed, more lines stored than processed.
    assert wait_until(lambda: lines_processed() >= 600)
    server.kill()
    server.wait()
    sender.join(10)
    interrupted = RawLog.objects.filter(status__in=UNFINISHED).count()
    assert interrupted > 0

    run_syslog("--tcp-port", str(port), env=env)
    assert wait_until(lambda: not RawLog.objects.filter(status__in=UNFINISHED).exists(), 120)

    for raw_log in RawLog.objects.all():
        stored = sum(1 for line in raw_log.content.split("\n") if line.strip())
        assert (raw_log.status, raw_log.lines_total) == (RawLogStatus.COMPLETED, stored)
    events = sorted(
        SecurityEvent.objects.values_list("rule_id", "correlation_key", "timestamp", "severity")
    )
    expected = expected_events()
    assert len(expected) > 100
    assert events == expected
    severe = [event for event in expected if event[3] >= 7]
    assert sum(Alert.objects.values_list("occurrence_count", flat=True)) == len(severe)
