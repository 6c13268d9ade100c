"""Component health and the payloads that carry it.

- `health_update` (HealthEvent of unified-ws.md): one component's status and metrics.
- `health_alert`: a component turned unhealthy (HealthEvent plus `previous_status`).
- `system_status` (threatlens-ws.md): one component's status, uptime and metrics.
- `health_check` (threatlens-ws.md): overall status and every component.

Statuses: healthy, warning, critical, unknown. "Unhealthy" means warning or critical.
"""

from dataclasses import dataclass, field
from typing import TypedDict

from realtime.envelopes import now_iso

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


class HealthEventData(TypedDict, total=False):
    component: str
    status: str
    metrics: dict
    message: str
    timestamp: str


class HealthAlertData(HealthEventData, total=False):
    previous_status: str | None


class SystemStatusData(TypedDict):
    component: str
    status: str
    uptime: float
    metrics: dict


class HealthCheckData(TypedDict):
    overall_status: str
    components: dict
    timestamp: str


def health_update_payload(health: ComponentHealth, *, timestamp=None) -> HealthEventData:
    data: HealthEventData = {
        "component": health.component,
        "status": health.status,
        "metrics": dict(health.metrics),
        "timestamp": timestamp or now_iso(),
    }
    if health.message:
        data["message"] = health.message
    return data


def health_alert_payload(health: ComponentHealth, previous_status, *, timestamp=None):
    data: HealthAlertData = {
        **health_update_payload(health, timestamp=timestamp),
        "previous_status": previous_status,
        "message": health.message or f"{health.component} is {health.status}",
    }
    return data


def system_status_payload(health: ComponentHealth, *, uptime) -> SystemStatusData:
    return {
        "component": health.component,
        "status": health.status,
        "uptime": round(float(health.uptime if health.uptime is not None else uptime), 1),
        "metrics": dict(health.metrics),
    }


def health_check_payload(components, *, extra=None, timestamp=None) -> HealthCheckData:
    """`components`: ComponentHealth values (or a dict of them by name). Each appears as
    `{"status": ..., **metrics}` (threatlens-ws.md shows `{"status", "connections"}`), with
    `message` when there is one. `extra` adds components given as ready dicts."""
    if isinstance(components, dict):
        components = components.values()
    entries = {}
    for health in components:
        entry = {"status": health.status, **health.metrics}
        if health.message:
            entry["message"] = health.message
        entries[health.component] = entry
    for name, entry in (extra or {}).items():
        entries[name] = dict(entry)
    return {
        "overall_status": overall_status(entry["status"] for entry in entries.values()),
        "components": entries,
        "timestamp": timestamp or now_iso(),
    }


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
