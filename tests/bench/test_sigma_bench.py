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
    assert figures["sigma_rules"] == 27  # the 7 shipped and 20 generated, all loaded
    assert figures["lines_processed"] == 400
    # The server ran the Sigma rules too: it stored exactly what the ceiling's analyzer
    # and Sigma engine find in the same lines.
    assert figures["events_match_detection_only"], figures
    assert figures["events_match_processing_order"], figures


def test_the_ingest_detection_ceiling_runs_the_sigma_rules_too():
    lines = generate("attack-heavy", 400, seed=1)
    without = ceilings(lines)
    with_sigma = ceilings(lines, rule_texts(20))
    # The shipped Sigma rules (SSH brute force, web 404 bursts) fire on the attack mix.
    assert with_sigma["detection_only_events"] > without["detection_only_events"]


def test_the_shipped_rules_can_be_left_out_of_the_ingest_run():
    from bench.ingest import parse_args, sigma_rule_texts

    args = parse_args(["--sigma", "20", "--sigma-without-shipped"])
    assert args.sigma_without_shipped
    assert len(sigma_rule_texts(20, shipped=False)) == 20
    assert len(rule_texts(20)) == 27
    # Without the shipped SSH brute-force correlations, the attack mix raises only the
    # built-in brute-force detections once.
    lines = generate("attack-heavy", 400, seed=1)
    assert (
        ceilings(lines, rule_texts(20, shipped=False))["detection_only_events"]
        < ceilings(lines, rule_texts(20))["detection_only_events"]
    )
