"""This process's Sigma figures for `/metrics`: rules loaded, and per rule its hits and
evaluation cost (sampled: one line in 64 is timed, see `engine.SigmaEngine.TIMING_SAMPLE`).
Counters restart when the engine is rebuilt."""

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from incidents.sigma import runtime

_SERIES = (
    # name suffix, help, attribute of the rule's stats
    ("hits_total", "Lines (or correlations) the rule matched.", "hits"),
    ("evaluations_total", "Lines the rule was evaluated on.", "evaluations"),
    ("evaluation_seconds_total", "CPU time evaluating the rule (sampled).", "seconds"),
)


class SigmaCollector:
    """A `prometheus_client` collector (registered with `realtime.monitoring.register_metrics`)."""

    def collect(self):
        engine = runtime.existing_engine()
        yield GaugeMetricFamily(
            "threatlens_sigma_rules_loaded",
            "Sigma rules this process runs.",
            value=len(engine) if engine else 0,
        )
        if engine is None:
            return
        titles = {rule.sigma_id: rule.title for rule in engine.detections}
        titles.update({rule.sigma_id: rule.title for rule, _members in engine.correlations})
        titles.update({rule.sigma_id: rule.title for rule, _member in engine.replacing.values()})
        for suffix, help_text, attribute in _SERIES:
            family = CounterMetricFamily(
                f"threatlens_sigma_rule_{suffix}", help_text, labels=["rule_id", "title"]
            )
            for sigma_id, stats in sorted(engine.stats.items()):
                labels = [str(sigma_id)[:200], str(titles.get(sigma_id, ""))[:200]]
                family.add_metric(labels, getattr(stats, attribute))
            yield family
