"""security_alert and threat_detected data built from drafts (unified-ws.md)."""

import pytest

from incidents.events import security_alert_data, threat_detected_data
from incidents.pipeline.alert_input import alert_input, severity_label
from incidents.pipeline.state import MemoryState
from tests.pipeline.helpers import Feed, at, bind_query, ssh_failure, syslog


def test_severity_labels():
    assert [severity_label(n) for n in (1, 3, 4, 6, 7, 8, 9, 10)] == [
        "low", "low", "medium", "medium", "high", "high", "critical", "critical",
    ]  # fmt: skip


def test_security_alert_data_has_the_unified_security_event_shape(feed):
    for index in range(10):
        feed(ssh_failure(at(index)))
    draft = feed.fired("ssh_bruteforce_ip")[0]
    data = security_alert_data(draft, alert_id=42)
    assert {"alert_id", "severity", "category", "message", "details", "timestamp"} <= set(data)
    assert data["alert_id"] == "42" and data["severity"] == "high"
    assert data["category"] == "suspicious" and data["source_ip"] == "203.0.113.45"
    assert data["details"]["rule_id"] == "ssh_bruteforce_ip"
    assert data["details"]["correlation_key"] == "ssh_bruteforce_ip:203.0.113.45"
    assert "domain" not in data


def test_threat_detected_data_for_a_listed_domain(state):
    listing = {"feed": "URLhaus", "rule": "fastupdate-cdn.example", "action": "NXDOMAIN"}
    feed = Feed(state, domain_lookup=lambda domain: listing if "fastupdate" in domain else None)
    feed(bind_query(at(0), name="dl.fastupdate-cdn.example", ip="10.20.2.57"))
    draft = feed.fired("dns_threat_feed_match")[0]
    data = threat_detected_data(draft)
    assert data["domain"] == "dl.fastupdate-cdn.example" and data["client_ip"] == "10.20.2.57"
    assert (data["rule"], data["feed"], data["action"]) == (
        "fastupdate-cdn.example", "URLhaus", "NXDOMAIN",
    )  # fmt: skip
    assert data["query_type"] == "A"
    assert security_alert_data(draft, alert_id=1)["domain"] == "dl.fastupdate-cdn.example"


def test_threat_detected_data_is_none_for_other_drafts(feed):
    for index in range(10):
        feed(ssh_failure(at(index)))
    assert threat_detected_data(feed.fired("ssh_bruteforce_ip")[0]) is None


def test_parent_domains():
    from incidents.pipeline.analyzer import parent_domains

    assert parent_domains("A.b.Evil.example.") == [
        "a.b.evil.example",
        "b.evil.example",
        "evil.example",
    ]
    assert parent_domains("localhost") == ["localhost"]


def test_alert_input_fits_the_alert_ingest_body(feed):
    for index in range(10):
        feed(ssh_failure(at(index)), source="auth.log")
    draft = feed.fired("ssh_bruteforce_ip")[0]
    data = alert_input(draft)
    assert data["title"] == draft.message and data["severity"] == "high"
    assert (data["source"], data["source_system"]) == ("pipeline", "auth.log")
    assert data["source_ip"] == "203.0.113.45" and data["source_port"] == 51234
    assert data["affected_host"] == "web01" and data["affected_user"] == "root"
    assert data["correlation_key"] == "ssh_bruteforce_ip:203.0.113.45"
    assert data["rule_id"] == "ssh_bruteforce_ip" and data["risk_score"] == 80
    assert "Recommendations:\n- Block 203.0.113.45" in data["description"]
    assert data["detected_at"] == draft.timestamp and "external_id" not in data
    assert data["details"]["raw_line"] == draft.raw_line


def test_alert_input_is_accepted_by_the_alert_serializer(db):
    serializers = pytest.importorskip("incidents.serializers")
    feed = Feed(MemoryState())
    for index in range(10):
        feed(ssh_failure(at(index)))
    body = alert_input(feed.fired("ssh_bruteforce_ip")[0], external_id="x")
    serializer = serializers.AlertIngestSerializer(data=body)
    assert serializer.is_valid(), serializer.errors


def test_host_names_are_not_passed_off_as_addresses(feed):
    feed(syslog(at(0), "su", "FAILED su for root by bob"))
    for index in range(10):
        feed(ssh_failure(at(index), ip="scanner.example.net"))
    (draft,) = feed.fired("ssh_bruteforce_ip")
    assert draft.src_ip is None and draft.details["fields"]["src_ip"] == "scanner.example.net"
    assert draft.correlation_key == "ssh_bruteforce_ip:scanner.example.net"
    assert "source_ip" not in security_alert_data(draft, alert_id=1)


def test_long_correlation_keys_are_bounded_and_stay_distinct(state):
    from incidents.pipeline.analyzer import CORRELATION_KEY_LIMIT

    feed = Feed(state)
    for user in ("a" * 300 + "1", "a" * 300 + "2"):
        for index in range(10):
            feed(ssh_failure(at(index), user=user, ip=f"192.0.2.{index + 1}"))
    keys = [d.correlation_key for d in feed.fired("ssh_bruteforce_user")]
    assert len(keys) == 2 and keys[0] != keys[1]
    assert all(len(key) <= CORRELATION_KEY_LIMIT for key in keys)


def test_correlation_keys_with_control_characters_stay_distinct(state):
    feed = Feed(state)
    for user in ("eve\x01", "eve\x02"):
        for index in range(10):
            feed(ssh_failure(at(index), user=user, ip=f"192.0.2.{index + 1}"))
    keys = [d.correlation_key for d in feed.fired("ssh_bruteforce_user")]
    assert len(set(keys)) == 2 and all(key.isprintable() for key in keys)
