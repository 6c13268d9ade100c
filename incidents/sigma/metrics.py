"""This process's Sigma figures for `/metrics` (listed in METRICS_EXTRA): rules loaded,
and per rule its hits and evaluation cost (sampled: one line in 64 is timed, see
`engine.SigmaEngine.TIMING_SAMPLE`). Counters restart when the engine is rebuilt."""

from incidents.sigma import runtime


def _label(text):
    return str(text).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')[:200]


def prometheus_text():
    engine = runtime.existing_engine()
    lines = [
        "# HELP threatlens_sigma_rules_loaded Sigma rules this process runs.",
        "# TYPE threatlens_sigma_rules_loaded gauge",
        f"threatlens_sigma_rules_loaded {len(engine) if engine else 0}",
    ]
    if engine is None:
        return "\n".join(lines) + "\n"
    titles = {rule.sigma_id: rule.title for rule in engine.detections}
    titles.update({rule.sigma_id: rule.title for rule, _members in engine.correlations})
    series = (
        ("hits_total", "counter", "Lines (or correlations) the rule matched.", "hits"),
        ("evaluations_total", "counter", "Lines the rule was evaluated on.", "evaluations"),
        (
            "evaluation_seconds_total",
            "counter",
            "CPU time evaluating the rule (sampled).",
            "seconds",
        ),  # fmt: skip
    )
    for suffix, kind, help_text, attribute in series:
        name = f"threatlens_sigma_rule_{suffix}"
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for sigma_id, stats in sorted(engine.stats.items()):
            labels = f'rule_id="{_label(sigma_id)}",title="{_label(titles.get(sigma_id, ""))}"'
            lines.append(f"{name}{{{labels}}} {getattr(stats, attribute)}")
    return "\n".join(lines) + "\n"
