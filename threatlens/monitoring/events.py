"""Event types of the health and metrics monitors, each declared with its payload.

- `health_update` (HealthEvent of unified-ws.md): one component's status and metrics,
  from the monitor runner, the forwarder probes (`dns/forwarders.py`) and BIND reloads
  (`dns/bind.py`) alike.
- `health_alert`: a component turned unhealthy (HealthEvent plus `previous_status`).
- `system_status` (threatlens-ws.md): one component's status, uptime and metrics.
- `health_check` (threatlens-ws.md): overall status and every component.
- `system_metrics` (SystemMetricsEvent of unified-ws.md): host metrics, collected by
  `metrics.collect_system_metrics`.
"""

from typing import Any, NotRequired, TypedDict

from realtime import catalogue
from realtime.catalogue import RECEIVE_SYSTEM, Family
from realtime.envelopes import now_iso
from threatlens.monitoring.health import ComponentHealth, overall_status
from threatlens.monitoring.metrics import SystemMetricsData, collect_system_metrics


class HealthUpdateData(TypedDict):
    component: str
    status: str  # healthy | warning | critical | unknown
    metrics: dict
    message: NotRequired[str]
    timestamp: Any  # ISO 8601 text or an aware datetime (the publisher encodes it)
    # Where the component is not one of the monitor runner's own:
    source: NotRequired[str]
    category: NotRequired[str]
    forwarder_id: NotRequired[str]


def health_update_data(health: ComponentHealth, *, timestamp=None, **extra) -> HealthUpdateData:
    """`extra`: `source`, `category`, `forwarder_id` (see `HealthUpdateData`)."""
    data: HealthUpdateData = {
        "component": health.component,
        "status": health.status,
        "metrics": dict(health.metrics),
        "timestamp": timestamp or now_iso(),
    }
    if health.message:
        data["message"] = health.message
    data.update(extra)
    return data


class HealthAlertData(TypedDict):
    component: str
    status: str
    metrics: dict
    message: str
    timestamp: Any
    previous_status: str | None


def health_alert_data(health: ComponentHealth, previous_status, *, timestamp=None):
    data: HealthAlertData = {
        "component": health.component,
        "status": health.status,
        "metrics": dict(health.metrics),
        "message": health.message or f"{health.component} is {health.status}",
        "timestamp": timestamp or now_iso(),
        "previous_status": previous_status,
    }
    return data


class SystemStatusData(TypedDict):
    component: str
    status: str
    uptime: float
    metrics: dict
    message: NotRequired[str]


def system_status_data(health: ComponentHealth, *, uptime) -> SystemStatusData:
    """`uptime`: the process's, used when the component does not know its own."""
    data: SystemStatusData = {
        "component": health.component,
        "status": health.status,
        "uptime": round(float(health.uptime if health.uptime is not None else uptime), 1),
        "metrics": dict(health.metrics),
    }
    if health.message:
        data["message"] = health.message
    return data


class HealthCheckData(TypedDict):
    overall_status: str
    components: dict
    timestamp: str


def health_check_data(components, *, extra=None, timestamp=None) -> HealthCheckData:
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


for name, family, priority, description, builder, schema in [
    (
        "system_status",
        Family.THREATLENS,
        3,
        "A component's status (threatlens-ws.md).",
        system_status_data,
        SystemStatusData,
    ),
    (
        "health_check",
        Family.THREATLENS,
        2,
        "Overall health with components (threatlens-ws.md).",
        health_check_data,
        HealthCheckData,
    ),
    (
        "health_update",
        Family.SYSTEM,
        5,
        "A component's health (HealthEvent, unified-ws.md).",
        health_update_data,
        HealthUpdateData,
    ),
    (
        "health_alert",
        Family.SYSTEM,
        8,
        "A component turned unhealthy.",
        health_alert_data,
        HealthAlertData,
    ),
    (
        "system_metrics",
        Family.SYSTEM,
        4,
        "Host metrics (SystemMetricsEvent, unified-ws.md).",
        collect_system_metrics,
        SystemMetricsData,
    ),
]:
    catalogue.declare(
        name,
        family=family,
        priority=priority,
        permission=RECEIVE_SYSTEM,
        description=description,
        builder=builder,
        schema=schema,
    )
