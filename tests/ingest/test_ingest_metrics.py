"""Ingest figures for operators: /metrics and the `log_ingest` component."""

import time

import pytest
from django.test import AsyncClient

from incidents.ingest_metrics import PROCESSING, log_ingest_health
from incidents.processing import reset_detection_state
from incidents.syslog import sink as sink_module
from incidents.syslog.sink import RawLogSink, ReceivedLine
from tests.ingest.helpers import ssh_failure
from tests.prometheus_samples import samples
from tests.syslog.helpers import eventually

pytestmark = pytest.mark.django_db(transaction=True)


def received(text):
    return ReceivedLine(text, "sshd", time.time(), "tcp", "192.0.2.1")


@pytest.fixture
def small_sink(monkeypatch):
    sink = RawLogSink(max_lines=30)
    monkeypatch.setattr(sink_module, "_sink", sink)
    yield sink
    sink.close()


def metric(text, name):
    return samples(text)[name]


async def test_metrics_count_received_dropped_malformed_processed_and_evicted(
    small_sink, settings, carol, token_for
):
    settings.DETECTION_STATE_MAX_KEYS = 1
    reset_detection_state()
    before = PROCESSING.snapshot()["lines_processed"]  # this process's, since it started
    # Twelve failures from each of three addresses, in one offer of 36 lines: 30 fit.
    lines = [
        received(ssh_failure(n, ip=f"203.0.113.{1 + n % 3}", port=40000 + n)) for n in range(36)
    ]
    assert small_sink.offer(lines) == 30
    small_sink.count_malformed(2, transport="tcp")
    assert await eventually(lambda: small_sink.stats()["processed"] == 30, timeout=20)

    response = await AsyncClient().get(
        "/metrics", headers={"authorization": f"Bearer {token_for(carol)}"}
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert metric(text, "threatlens_ingest_lines_received_total") == 30
    assert metric(text, "threatlens_ingest_lines_dropped_total") == 6
    assert metric(text, 'threatlens_ingest_lines_malformed_total{transport="tcp"}') == 2
    assert metric(text, "threatlens_ingest_lines_processed_total") == before + 30
    assert metric(text, "threatlens_ingest_queue_depth") == 0
    assert metric(text, "threatlens_ingest_lag_seconds") == 0
    # One key per rule: the three addresses push each other out of ssh_bruteforce_ip.
    assert metric(text, 'threatlens_ingest_state_evictions_total{rule="ssh_bruteforce_ip"}') > 0

    health = log_ingest_health(files_monitored=lambda: 0)
    assert health.component == "log_ingest"
    assert health.status == "warning"
    assert "6 lines dropped" in health.message and "evicted" in health.message
    assert health.metrics["lines_processed"] == before + 30
    assert health.metrics["files_monitored"] == 0
    assert set(health.metrics) >= {"events_processed", "queue_depth", "lag_seconds"}


async def test_lag_is_the_age_of_the_oldest_line_waiting():
    sink = RawLogSink(max_lines=10)
    try:
        old = ReceivedLine("<13>x", "syslog", time.time() - 30, "tcp", "192.0.2.1")
        sink.queue.offer([old])  # queued, without starting the worker
        assert 29 < sink.stats()["lag_seconds"] < 40
    finally:
        sink.close()
