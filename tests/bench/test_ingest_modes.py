"""The ingest benchmark's modes run end to end, small: syslog UDP, `POST /api/logs/` with
concurrent clients, a paced TCP run with sockets subscribed to `security_event`
(detection latency), and the delivery benchmark with ingest in the background."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.ingest_mix import generate, iterate
from bench.ingest_send import paced

ROOT = Path(__file__).resolve().parents[2]


def run_ingest(*options, timeout=600):
    result = subprocess.run(
        [sys.executable, "-m", "bench.ingest", "--mix", "realistic", "--json", *options],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_iterate_gives_the_lines_of_generate():
    assert list(iterate("attack-heavy", 300, seed=3)) == generate("attack-heavy", 300, seed=3)


def test_paced_sends_every_line_on_schedule():
    import time

    started = time.monotonic()
    batches = list(paced(range(100), rate=500))
    assert [n for batch in batches for n in batch] == list(range(100))
    assert 0.15 <= time.monotonic() - started < 1.5  # 100 lines at 500/s: about 0.2 s


@pytest.mark.e2e
def test_udp_mode_counts_what_arrived():
    figures = run_ingest("--transport", "udp", "--lines", "600", "--rate", "600")
    assert figures["transport"] == "udp"
    assert figures["sent"] == 600
    # Paced on loopback nothing should be lost, but UDP may: the drops are reported.
    assert figures["lines_processed"] + figures["udp_dropped"] == 600
    assert figures["lines_processed"] > 0


@pytest.mark.e2e
def test_http_mode_posts_with_concurrent_clients_and_times_the_calls():
    figures = run_ingest(
        "--transport", "http", "--lines", "800", "--http-clients", "3", "--post-lines", "100"
    )
    assert figures["lines_processed"] == 800
    assert figures["lines_lost"] == 0
    assert figures["send_errors"] == 0
    assert figures["http_calls"] >= 8
    # Three clients' calls are processed in whatever order they arrive, each whole: the
    # server stored exactly what the analyzer alone finds over them in that order.
    assert figures["events_match_processing_order"] is True, figures
    assert 0 < figures["call_p50_ms"] <= figures["call_p99_ms"] <= figures["call_max_ms"]


@pytest.mark.e2e
def test_paced_tcp_with_sockets_measures_detection_latency_and_rss():
    figures = run_ingest(
        "--rate", "500", "--duration", "2", "--sockets", "6", "--client-procs", "1",
        "--rss-interval", "0.5",
    )  # fmt: skip
    assert figures["lines"] == 1000
    assert figures["lines_processed"] == 1000 and figures["lines_lost"] == 0
    assert figures["events_match_detection_only"] is True
    latency = figures["detection_latency"]
    assert figures["security_events"] > 0
    # Every socket got every stored event, each matched to the line it was detected in.
    assert latency["events_received"] == latency["events_expected"]
    assert latency["unmatched"] == 0
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert len(figures["rss_mb_samples"]) >= 2


@pytest.mark.e2e
@pytest.mark.parametrize("ingest_in", ["server", "run_syslog"])
def test_the_delivery_benchmark_runs_with_ingest_in_the_background(tmp_path, ingest_in):
    output = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--clients=10", "--steady", "--rate=10",
         "--duration=2", "--settle=0.2", "--drain=3", "--no-ceiling", "--ingest-rate=300",
         f"--ingest-in={ingest_in}", f"--json={output}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    ours = json.loads(output.read_text())["ours"]
    assert ours["phases"][0]["lost"] == 0
    ingest = ours["ingest"]
    assert ingest["sent"] > 0 and ingest["lines_processed"] > 0
    assert "ingest in the background" in result.stdout
