"""Component health: what a check answers, and how statuses combine.

The events that carry it (`health_update`, `health_alert`, `system_status`,
`health_check`) are declared with their payload builders in `monitoring/events.py`.

Statuses: healthy, warning, critical, unknown. "Unhealthy" means warning or critical.
"""

from dataclasses import dataclass, field

HEALTHY = "healthy"
WARNING = "warning"
CRITICAL = "critical"
UNKNOWN = "unknown"
STATUSES = (HEALTHY, WARNING, CRITICAL, UNKNOWN)
UNHEALTHY = frozenset({WARNING, CRITICAL})
# How bad a status is; unknown ranks with healthy so that "we cannot tell" never raises
# an alert by itself.
SEVERITY_RANK = {HEALTHY: 0, UNKNOWN: 0, WARNING: 1, CRITICAL: 2}

# Default thresholds (percent) for the "system" component, derived from host metrics.
SYSTEM_THRESHOLDS = {
    "cpu": (85.0, 95.0),
    "memory": (85.0, 95.0),
    "disk": (85.0, 95.0),
}


@dataclass
class ComponentHealth:
    """The result of one health check. `metrics` uses HealthEvent's names where they fit
    (cpu_usage, memory_usage, disk_usage, response_time in ms, error_rate) and may add its
    own. `uptime` (seconds) is the component's own when it knows it."""

    component: str
    status: str
    metrics: dict = field(default_factory=dict)
    message: str = ""
    uptime: float | None = None

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {self.status!r}")


def overall_status(statuses):
    """The worst status; unknown only when nothing is known (or there is nothing)."""
    statuses = list(statuses)
    if CRITICAL in statuses:
        return CRITICAL
    if WARNING in statuses:
        return WARNING
    if HEALTHY in statuses:
        return HEALTHY
    return UNKNOWN


def is_escalation(previous, current):
    """True when `current` is unhealthy and worse than `previous` (None: never seen). This
    is when a health_alert goes out: healthy -> warning, warning -> critical, a first
    result that is already critical; not critical -> critical again, nor recoveries."""
    if current not in UNHEALTHY:
        return False
    return SEVERITY_RANK[current] > SEVERITY_RANK.get(previous, 0)


def system_health(metrics_data, thresholds=None) -> ComponentHealth:
    """The "system" component judged from a SystemMetricsEvent's cpu, memory and disk."""
    thresholds = {**SYSTEM_THRESHOLDS, **(thresholds or {})}
    metrics = metrics_data["metrics"]
    usage = {
        "cpu": metrics["cpu"]["usage_percent"],
        "memory": metrics["memory"]["usage_percent"],
        "disk": metrics["disk"]["usage_percent"],
    }
    status, problems = HEALTHY, []
    for name, value in usage.items():
        warning, critical = thresholds[name]
        if value >= critical:
            status = CRITICAL
            problems.append(f"{name} at {value}% (critical from {critical}%)")
        elif value >= warning:
            if status != CRITICAL:
                status = WARNING
            problems.append(f"{name} at {value}% (warning from {warning}%)")
    return ComponentHealth(
        component="system",
        status=status,
        metrics={
            "cpu_usage": usage["cpu"],
            "memory_usage": usage["memory"],
            "disk_usage": usage["disk"],
            "load_average": list(metrics["cpu"]["load_average"]),
        },
        message="; ".join(problems),
    )
