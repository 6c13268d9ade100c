"""system_metrics data: the SystemMetricsEvent shape of unified-ws.md."""

from collections import namedtuple

import pytest

from threatlens.monitoring import metrics
from threatlens.monitoring import metrics as metrics_module
from threatlens.monitoring.metrics import (
    NetworkCounters,
    collect_system_metrics,
    dns_metrics,
    register_dns_metrics_provider,
)

SHAPE = {
    "cpu": {"usage_percent": float, "load_average": list},
    "memory": {"total": int, "used": int, "available": int, "usage_percent": float},
    "disk": {"total": int, "used": int, "available": int, "usage_percent": float},
    "network": {
        "bytes_sent": int,
        "bytes_received": int,
        "packets_sent": int,
        "packets_received": int,
    },
    "dns": {
        "queries_per_second": float,
        "active_zones": int,
        "total_records": int,
        "queries": int,
        "nxdomain": int,
        "servfail": int,
        "rpz_hits": int,
    },
}

Counters = namedtuple("Counters", "bytes_sent bytes_recv packets_sent packets_recv")


@pytest.fixture(autouse=True)
def _no_dns_provider(monkeypatch):
    # monkeypatch puts the DNS app's provider back afterwards (other tests rely on it).
    monkeypatch.setattr(metrics_module, "_dns_provider", None)


def test_metrics_have_exactly_the_unified_shape():
    data = collect_system_metrics(network=NetworkCounters())
    assert set(data) == {"metrics", "timestamp"}
    assert data["timestamp"].endswith("Z")
    assert set(data["metrics"]) == set(SHAPE)
    for group, fields in SHAPE.items():
        assert set(data["metrics"][group]) == set(fields), group
        for name, kind in fields.items():
            assert isinstance(data["metrics"][group][name], kind), (group, name)
    assert len(data["metrics"]["cpu"]["load_average"]) == 3
    memory = data["metrics"]["memory"]
    assert 0 < memory["available"] <= memory["total"] and 0 <= memory["usage_percent"] <= 100
    assert data["metrics"]["disk"]["total"] > 0


def test_network_figures_are_deltas_since_the_previous_sample():
    readings = iter(
        [Counters(1000, 5000, 10, 50), Counters(1600, 5900, 14, 61), Counters(10, 6000, 15, 62)]
    )
    network = NetworkCounters(read=lambda: next(readings))
    assert network.delta() == {
        "bytes_sent": 0,
        "bytes_received": 0,
        "packets_sent": 0,
        "packets_received": 0,
    }
    assert network.delta() == {
        "bytes_sent": 600,
        "bytes_received": 900,
        "packets_sent": 4,
        "packets_received": 11,
    }
    # A counter that went backwards (interface reset) is not a negative amount of traffic.
    assert network.delta()["bytes_sent"] == 0


def test_dns_figures_are_zeros_without_a_provider():
    assert dns_metrics() == {
        "queries_per_second": 0.0,
        "active_zones": 0,
        "total_records": 0,
        "queries": 0,
        "nxdomain": 0,
        "servfail": 0,
        "rpz_hits": 0,
    }


def test_dns_figures_come_from_the_registered_provider():
    register_dns_metrics_provider(
        lambda: {
            "queries_per_second": 12.345,
            "active_zones": 3,
            "total_records": 41,
            "rpz_hits": 2,
        }
    )
    data = collect_system_metrics(network=NetworkCounters())
    assert data["metrics"]["dns"] == {
        "queries_per_second": 12.35,
        "active_zones": 3,
        "total_records": 41,
        "queries": 0,
        "nxdomain": 0,
        "servfail": 0,
        "rpz_hits": 2,
    }


def test_a_failing_dns_provider_gives_zeros_not_an_error(caplog):
    def broken():
        raise RuntimeError("zones table missing")

    register_dns_metrics_provider(broken)
    assert dns_metrics()["active_zones"] == 0
    assert "DNS metrics provider failed" in caplog.text


def test_metrics_module_does_not_import_the_dns_app():
    import sys

    assert metrics.__name__ in sys.modules
    with open(metrics.__file__) as handle:
        source = handle.read()
    assert "from dns" not in source and "import dns" not in source
