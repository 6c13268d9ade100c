"""health_update, health_alert, system_status and health_check payloads."""

import pytest

from threatlens.monitoring.events import (
    health_alert_data,
    health_check_data,
    health_update_data,
    system_status_data,
)
from threatlens.monitoring.health import (
    ComponentHealth,
    is_escalation,
    overall_status,
    system_health,
)


def test_health_update_has_the_health_event_shape():
    data = health_update_data(
        ComponentHealth("database", "healthy", metrics={"response_time": 1.2}),
        timestamp="2025-03-10T14:00:00Z",
    )
    assert data == {
        "component": "database",
        "status": "healthy",
        "metrics": {"response_time": 1.2},
        "timestamp": "2025-03-10T14:00:00Z",
    }
    with_message = health_update_data(ComponentHealth("cache", "critical", message="down"))
    assert with_message["message"] == "down" and with_message["timestamp"].endswith("Z")


def test_unknown_status_is_refused():
    with pytest.raises(ValueError, match="status must be one of"):
        ComponentHealth("database", "sort of ok")


def test_health_alert_names_the_previous_status():
    data = health_alert_data(ComponentHealth("cache", "critical"), "healthy")
    assert data["previous_status"] == "healthy" and data["status"] == "critical"
    assert data["message"] == "cache is critical"


def test_system_status_has_the_threatlens_shape():
    data = system_status_data(
        ComponentHealth("database", "healthy", metrics={"response_time": 2.0}), uptime=3600.54
    )
    assert data == {
        "component": "database", "status": "healthy", "uptime": 3600.5,
        "metrics": {"response_time": 2.0},
    }  # fmt: skip
    own = system_status_data(ComponentHealth("system", "healthy", uptime=86400), uptime=5)
    assert own["uptime"] == 86400


def test_health_check_flattens_component_metrics():
    data = health_check_data(
        [
            ComponentHealth("database", "healthy", metrics={"response_time": 1.0}),
            ComponentHealth("cache", "warning", message="slow: 700 ms"),
        ],
        extra={"monitors": {"status": "healthy", "jobs": 4}},
        timestamp="2025-03-10T14:00:00Z",
    )
    assert data == {
        "overall_status": "warning",
        "components": {
            "database": {"status": "healthy", "response_time": 1.0},
            "cache": {"status": "warning", "message": "slow: 700 ms"},
            "monitors": {"status": "healthy", "jobs": 4},
        },
        "timestamp": "2025-03-10T14:00:00Z",
    }


@pytest.mark.parametrize(
    ("statuses", "overall"),
    [
        (["healthy", "healthy"], "healthy"),
        (["healthy", "warning"], "warning"),
        (["warning", "critical", "healthy"], "critical"),
        (["healthy", "unknown"], "healthy"),
        (["unknown"], "unknown"),
        ([], "unknown"),
    ],
)
def test_overall_status_is_the_worst_known(statuses, overall):
    assert overall_status(statuses) == overall


@pytest.mark.parametrize(
    ("previous", "current", "alert"),
    [
        (None, "critical", True),
        (None, "healthy", False),
        ("healthy", "warning", True),
        ("healthy", "critical", True),
        ("warning", "critical", True),
        ("critical", "critical", False),
        ("critical", "warning", False),
        ("warning", "warning", False),
        ("critical", "healthy", False),
        ("unknown", "critical", True),
        ("healthy", "unknown", False),
    ],
)
def test_escalation(previous, current, alert):
    assert is_escalation(previous, current) is alert


def metrics_with(cpu=10.0, memory=20.0, disk=30.0):
    return {
        "metrics": {
            "cpu": {"usage_percent": cpu, "load_average": [0.1, 0.2, 0.3]},
            "memory": {"usage_percent": memory},
            "disk": {"usage_percent": disk},
        }
    }


def test_system_health_from_metrics():
    healthy = system_health(metrics_with())
    assert healthy.status == "healthy" and healthy.component == "system"
    assert healthy.metrics == {
        "cpu_usage": 10.0, "memory_usage": 20.0, "disk_usage": 30.0,
        "load_average": [0.1, 0.2, 0.3],
    }  # fmt: skip
    assert system_health(metrics_with(memory=90.0)).status == "warning"
    critical = system_health(metrics_with(cpu=90.0, disk=97.5))
    assert critical.status == "critical"
    assert "disk at 97.5%" in critical.message and "cpu at 90.0%" in critical.message
    assert system_health(metrics_with(cpu=50), {"cpu": (40, 60)}).status == "warning"
