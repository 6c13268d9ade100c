"""What log ingest tells operators: this process's counters, in `/metrics` and in the
`log_ingest` component of `system_status`.

    snapshot()           -> dict of the figures below
    IngestCollector()    -> /metrics families (registered with realtime.monitoring)
    log_ingest_health()  -> ComponentHealth("log_ingest"), a monitor runner check

Figures (since this process started):

- lines_received, lines_dropped, lines_malformed: the syslog intake's (`incidents.syslog.
  sink`): lines accepted into the queue, lines refused because it was full (UDP), and
  messages the receiver refused (oversized, binary), per transport;
- lines_processed, lines_unparsed (malformed or unknown to every parser), events_created,
  alerts_raised, batches: every raw log processed here (uploads, watched files, syslog);
- queue_depth: received lines not yet processed; lag_seconds: how long the oldest of them
  has waited (0 when none wait);
- state_keys, state_evictions: detection state held and evicted while it still mattered,
  per rule (`incidents.pipeline.state.BoundedState`).

A process that stands for another one (a server and its syslog child process,
`incidents/syslog/supervisor.py`) adds that one's figures (`add_figures_source`), so
operators see the server's and its child's ingest as one.
"""

import logging
import threading
import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

logger = logging.getLogger(__name__)


class ProcessingCounters:
    """Totals of what `incidents.processing` did in this process (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.lines = self.unparsed = self.events = self.alerts = self.batches = 0
        self.started_at = time.time()

    def add(self, *, lines, unparsed, events, alerts):
        with self._lock:
            self.lines += lines
            self.unparsed += unparsed
            self.events += events
            self.alerts += alerts
            self.batches += 1

    def snapshot(self):
        with self._lock:
            return {
                "lines_processed": self.lines,
                "lines_unparsed": self.unparsed,
                "events_created": self.events,
                "alerts_raised": self.alerts,
                "batches": self.batches,
            }


PROCESSING = ProcessingCounters()


_figures_sources = []  # callables: another process's snapshot() (or None), added here

SUMMED = (
    "lines_processed", "lines_unparsed", "events_created", "alerts_raised", "batches",
    "lines_received", "lines_dropped", "lines_malformed", "queue_depth", "queue_capacity",
)  # fmt: skip


def add_figures_source(source):
    """Add another process's figures (`source()`: its `snapshot()`, or None) to this one's."""
    _figures_sources.append(source)


def remove_figures_source(source):
    if source in _figures_sources:
        _figures_sources.remove(source)


def _add_other(figures, other):
    for key in SUMMED:
        figures[key] += other.get(key, 0)
    figures["lag_seconds"] = max(figures["lag_seconds"], other.get("lag_seconds", 0.0))
    by_transport = figures["lines_malformed_by_transport"]
    for transport, count in other.get("lines_malformed_by_transport", {}).items():
        by_transport[transport] = by_transport.get(transport, 0) + count
    if other.get("state_shared") and figures["state_shared"]:
        return  # the same Redis state, already read here
    figures["state_keys"] += other.get("state_keys", 0)
    figures["state_evictions"] += other.get("state_evictions", 0)
    for rule, item in other.get("state_by_rule", {}).items():
        mine = figures["state_by_rule"].setdefault(rule, {"keys": 0, "evictions": 0})
        mine["keys"] = mine.get("keys", 0) + item.get("keys", 0)
        mine["evictions"] = mine.get("evictions", 0) + item.get("evictions", 0)


def snapshot():
    """This process's ingest figures (see the module docstring), with those of the
    processes it stands for."""
    figures = own_snapshot()
    for source in list(_figures_sources):
        other = source()
        if other:
            _add_other(figures, other)
    return figures


def own_snapshot():
    """This process's own ingest figures (see the module docstring)."""
    from incidents.processing import current_detection_state
    from incidents.syslog.sink import current_sink

    figures = PROCESSING.snapshot()
    sink = current_sink()
    stats = sink.stats() if sink is not None else {}
    malformed = stats.get("malformed", {})
    figures.update(
        lines_received=stats.get("accepted", 0),
        lines_dropped=stats.get("dropped", 0),
        lines_malformed=sum(malformed.values()),
        lines_malformed_by_transport=dict(malformed),
        queue_depth=stats.get("held", 0),
        queue_capacity=stats.get("capacity", 0),
        lag_seconds=stats.get("lag_seconds", 0.0),
    )
    state = current_detection_state()
    try:
        per_rule = state.stats() if state is not None else {}
    except Exception as exc:
        # The shared state's Redis unreachable: the other figures still go out.
        logger.warning("detection state figures unavailable: %s", type(exc).__name__)
        per_rule = {}
    figures.update(
        state_shared=bool(getattr(state, "shared", False)),
        state_keys=sum(item["keys"] for item in per_rule.values()),
        state_evictions=sum(item["evictions"] for item in per_rule.values()),
        state_by_rule=per_rule,
    )
    return figures


SIMPLE_METRICS = [
    # name, type, help, key of snapshot()
    ("threatlens_ingest_lines_received_total", "counter",
     "Lines taken into the intake queue.", "lines_received"),
    ("threatlens_ingest_lines_dropped_total", "counter",
     "Lines refused: the intake queue was full.", "lines_dropped"),
    ("threatlens_ingest_lines_processed_total", "counter",
     "Lines parsed and analysed.", "lines_processed"),
    ("threatlens_ingest_lines_unparsed_total", "counter",
     "Processed lines no parser understood.", "lines_unparsed"),
    ("threatlens_ingest_events_total", "counter", "Security events stored.", "events_created"),
    ("threatlens_ingest_alerts_total", "counter", "Alerts raised (new ones).", "alerts_raised"),
    ("threatlens_ingest_queue_depth", "gauge",
     "Received lines not yet processed.", "queue_depth"),
    ("threatlens_ingest_lag_seconds", "gauge",
     "Age of the oldest line not yet processed.", "lag_seconds"),
    ("threatlens_ingest_state_keys", "gauge", "Detection state keys held.", "state_keys"),
]  # fmt: skip


class IngestCollector:
    """The ingest figures as Prometheus metric families (a `prometheus_client` collector,
    registered with `realtime.monitoring.register_metrics`)."""

    def collect(self):
        figures = snapshot()
        for name, kind, help_text, key in SIMPLE_METRICS:
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(name, help_text, value=figures[key])
        yield _labelled(
            "threatlens_ingest_lines_malformed_total",
            "Messages refused by the receiver (oversized, binary).",
            "transport",
            sorted(figures["lines_malformed_by_transport"].items()),
        )
        yield _labelled(
            "threatlens_ingest_state_evictions_total",
            "Detection state evicted while it still mattered (DETECTION_STATE_MAX_KEYS).",
            "rule",
            [(rule, item["evictions"]) for rule, item in sorted(figures["state_by_rule"].items())],
        )


def _labelled(name, help_text, label, samples):
    """A counter with one sample per label value; 0 without a label while there is none."""
    if not samples:
        return CounterMetricFamily(name, help_text, value=0)
    family = CounterMetricFamily(name, help_text, labels=[label])
    for value, count in samples:
        family.add_metric([value], count)
    return family


def log_ingest_health(files_monitored=None):
    """The `log_ingest` component: healthy, or warning while lines wait more than 60 s,
    lines are being dropped, or detection state is evicted."""
    from threatlens.monitoring.health import HEALTHY, WARNING, ComponentHealth

    figures = snapshot()
    problems = []
    if figures["lag_seconds"] > 60:
        problems.append(f"the oldest line has waited {figures['lag_seconds']:.0f} s")
    if figures["lines_dropped"]:
        problems.append(f"{figures['lines_dropped']} lines dropped (queue full)")
    if figures["state_evictions"]:
        problems.append(
            f"{figures['state_evictions']} detection keys evicted (DETECTION_STATE_MAX_KEYS)"
        )
    metrics = {
        key: figures[key]
        for key in (
            "lines_received", "lines_processed", "lines_dropped", "lines_malformed",
            "queue_depth", "lag_seconds", "state_evictions",
        )
    }  # fmt: skip
    metrics["events_processed"] = figures["events_created"]
    metrics["alerts_raised"] = figures["alerts_raised"]
    if files_monitored is not None:
        metrics["files_monitored"] = files_monitored()
    return ComponentHealth(
        component="log_ingest",
        status=WARNING if problems else HEALTHY,
        message="; ".join(problems),
        metrics=metrics,
        uptime=round(time.time() - PROCESSING.started_at, 1),
    )
