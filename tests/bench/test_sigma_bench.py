"""The Sigma benchmark runs, small, and its generated rules all load."""

import subprocess
import sys
from pathlib import Path

from bench.sigma import generated_rules
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
