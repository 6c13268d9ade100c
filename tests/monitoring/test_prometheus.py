"""/metrics is rendered by prometheus_client from collectors reading our own counters:
the same family names and types as before, text that Prometheus' own parser reads."""

import pytest
from asgiref.sync import async_to_sync
from prometheus_client.core import GaugeMetricFamily

from realtime import monitoring
from tests.prometheus_samples import families

EXPECTED = {
    # the parser names a counter family without its _total suffix
    "threatlens_ws_connections": "gauge",
    "threatlens_ws_messages_in": "counter",
    "threatlens_ws_messages_out": "counter",
    "threatlens_ws_events_received": "counter",
    "threatlens_ws_events_dropped": "counter",
    "threatlens_ws_queue_depth": "gauge",
    "threatlens_ws_events_replayed": "counter",
    "threatlens_ws_stalled_closed": "counter",
    "threatlens_ws_layer_up": "gauge",
    "threatlens_ws_delivery_latency_seconds": "histogram",
    "threatlens_ingest_lines_received": "counter",
    "threatlens_ingest_lines_dropped": "counter",
    "threatlens_ingest_lines_processed": "counter",
    "threatlens_ingest_lines_unparsed": "counter",
    "threatlens_ingest_events": "counter",
    "threatlens_ingest_alerts": "counter",
    "threatlens_ingest_queue_depth": "gauge",
    "threatlens_ingest_lag_seconds": "gauge",
    "threatlens_ingest_state_keys": "gauge",
    "threatlens_ingest_lines_malformed": "counter",
    "threatlens_ingest_state_evictions": "counter",
    "threatlens_sigma_rules_loaded": "gauge",
}


def scrape():
    return families(async_to_sync(monitoring.metrics_text)())


def test_every_metric_family_is_there_with_its_type():
    found = {name: kind for name, (kind, _samples) in scrape().items()}
    assert EXPECTED.items() <= found.items()


def test_counters_keep_their_total_suffix_in_the_text():
    text = async_to_sync(monitoring.metrics_text)()
    assert "# TYPE threatlens_ws_messages_out_total counter" in text
    assert "\nthreatlens_ws_messages_out_total 0.0\n" in text


class Broken:
    def collect(self):
        raise RuntimeError("boom")


class Extra:
    def collect(self):
        yield GaugeMetricFamily("threatlens_test_extra", "A test figure.", value=7)


@pytest.fixture
def collectors(monkeypatch):
    registered = []
    monkeypatch.setattr(monitoring, "_COLLECTORS", registered)
    return registered


def test_a_broken_collector_leaves_the_others_in_place(collectors, caplog):
    monitoring.register_metrics(Broken())
    monitoring.register_metrics(Extra())
    figures = scrape()
    assert figures["threatlens_test_extra"] == ("gauge", {"threatlens_test_extra": 7})
    assert "threatlens_ws_connections" in figures
    assert "metrics collector" in caplog.text


def test_a_collector_registered_twice_is_collected_once(collectors):
    extra = Extra()
    monitoring.register_metrics(extra)
    monitoring.register_metrics(extra)
    assert len(collectors) == 1
