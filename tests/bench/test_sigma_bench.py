"""The Sigma benchmark and the ingest benchmark with Sigma rules run, small, and the
generated rules all load."""

import json
import subprocess
import sys
from pathlib import Path

from bench.ingest import ceilings
from bench.ingest_mix import generate
from bench.sigma import generated_rules, rule_texts
from incidents.sigma.loading import read_rule

ROOT = Path(__file__).resolve().parents[2]


def test_every_generated_rule_loads():
    rules = [read_rule(text) for text in generated_rules(120)]
    assert {rule.logsource.get("category") for rule in rules} >= {"webserver", "dns"}


def test_the_sigma_benchmark_prints_its_figures():
    result = subprocess.run(
        [sys.executable, "-m", "bench.sigma", "--records", "2000", "--generated", "20"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "rules: 27" in result.stdout
    for name in ("parse", "match", "analyze", "built-in"):
        assert f"\n{name}" in result.stdout


def test_the_ingest_benchmark_runs_with_sigma_rules_enabled():
    result = subprocess.run(
        [sys.executable, "-m", "bench.ingest", "--mix", "attack-heavy", "--lines", "400",
         "--sigma", "20", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.splitlines()[-1])
    # The 5 shipped rules that start enabled and the 20 generated, all loaded.
    assert figures["sigma_rules"] == 25
    assert figures["lines_processed"] == 400
    # The server ran the Sigma rules too: it stored exactly what the ceiling's analyzer
    # and Sigma engine find in the same lines.
    assert figures["events_match_detection_only"], figures
    assert figures["events_match_processing_order"], figures


def test_the_ingest_detection_ceiling_runs_the_sigma_rules_too():
    from bench.ingest import sigma_rule_texts

    lines = generate("attack-heavy", 400, seed=1)
    without = ceilings(lines)
    # The shipped rules (SSH brute force, web 404 bursts) fire on the attack mix, in place
    # of the built-in rules they replace: the same detections, not twice as many.
    shipped = ceilings(lines, sigma_rule_texts(0))
    assert shipped["detection_only_events"] == without["detection_only_events"]


def test_the_shipped_rules_can_be_left_out_of_the_ingest_run():
    from bench.ingest import parse_args, sigma_rule_texts

    args = parse_args(["--sigma", "20", "--sigma-without-shipped"])
    assert args.sigma_without_shipped
    assert len(sigma_rule_texts(20, shipped=False)) == 20
    assert len(sigma_rule_texts(20)) == 25  # two shipped rules start disabled
    assert len(rule_texts(20)) == 27
    # With or without the shipped rules, the brute forces are detected once.
    lines = generate("attack-heavy", 400, seed=1)
    assert (
        ceilings(lines, sigma_rule_texts(20, shipped=False))["detection_only_events"]
        == ceilings(lines, sigma_rule_texts(20))["detection_only_events"]
    )
