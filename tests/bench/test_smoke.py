"""The benchmark end to end, small: 20 clients against a real server and the ceiling."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_the_benchmark_runs_end_to_end_and_every_client_gets_every_event(tmp_path):
    output = tmp_path / "figures.json"
    command = [
        sys.executable,
        "-m",
        "bench.run",
        "--clients=20",
        "--client-procs=2",
        "--rate=10",
        "--duration=1",
        "--burst-events=30",
        "--settle=0.2",
        "--drain=3",
        "--verify",
        f"--json={output}",
    ]
    if os.environ.get("REDIS_URL"):
        # The services pass: the servers share Redis (a key prefix of their own).
        command += ["--redis", f"--redis-url={os.environ['REDIS_URL']}"]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-4000:]

    figures = json.loads(output.read_text())
    for target in ("ours", "ceiling"):
        result = figures[target]
        assert result["connect"]["ok"] == 20, result["connect"]
        assert result["connect"]["failed"] == 0
        assert result["memory"]["idle_mb"] > 0
        assert [phase["phase"] for phase in result["phases"]] == ["steady", "burst"]
        for phase in result["phases"]:
            assert phase["published"] > 0, phase["publish_errors"]
            assert phase["expected"] == 20 * phase["published"]
            assert phase["lost"] == 0
            assert phase["duplicates"] == 0
            assert phase["verify_errors"] == 0
            assert phase["latency"]["count"] == phase["received"]
            assert phase["delivered_per_second"] > 0
    assert "Ours as a ratio of the ceiling" in completed.stdout
    assert "Targets (issue 7)" in completed.stdout
