"""Processing raw logs: stages, chunks, security events, alerts, threat detections."""

import gzip

import pytest
from django.test import TestCase

from incidents import services
from incidents.ingest import receive_log_file, receive_raw_log
from incidents.models import Alert, AlertStatus, RawLog, RawLogStatus, SecurityEvent
from incidents.processing import process_raw_log
from incidents.security_events import SecurityEventSerializer
from tests.ingest.helpers import (
    at,
    bind_query,
    brute_force,
    cron_line,
    event_data,
    events,
    ssh_success,
    stages,
    text,
)
from threatlens.writeguard import service_writes

pytestmark = pytest.mark.django_db


def ingest(content, *, source="auth.log"):
    """Receive and process `content` as the system would, running the on-commit
    publications; returns the processed raw log."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        raw_log = receive_raw_log(source=source, content=content, actor=None)
        return process_raw_log(raw_log.pk)


def test_a_log_goes_through_every_stage_and_each_stage_is_published():
    raw_log = ingest(text([cron_line(0), cron_line(60)]))

    assert raw_log.status == raw_log.stage == RawLogStatus.COMPLETED
    assert stages(raw_log.pk) == [
        ("received", "completed"),
        ("parsing", "started"),
        ("analysis", "in_progress"),
        ("completed", "completed"),
    ]
    final = event_data("processing_update")[-1]
    assert final["raw_log_id"] == str(raw_log.pk)
    assert final["progress"] == 1.0
    assert final["events_created"] == 0
    assert final["processing_time"] >= 0
    assert final["source"] == "auth.log"
    assert final["category"] == "processing"
    assert "error" not in final


def test_a_large_log_is_processed_in_chunks_with_growing_progress(settings):
    settings.LOG_PROCESSING_CHUNK_LINES = 10
    raw_log = ingest(text([cron_line(i) for i in range(35)]))

    updates = [d for d in event_data("processing_update") if d["stage"] == "analysis"]
    assert len(updates) == 4  # every 10 lines, not every line
    progress = [update["progress"] for update in updates]
    assert progress == sorted(progress) and progress[-1] == 1.0 and progress[0] < 0.5
    assert raw_log.lines_total == 35


def test_a_brute_force_raises_exactly_one_alert_and_its_repeat_joins_it():
    raw_log = ingest(text(brute_force(26)))

    alert = Alert.objects.get()
    assert alert.source == "pipeline"
    assert alert.rule_id == "ssh_bruteforce_ip"
    assert alert.correlation_key == "ssh_bruteforce_ip:203.0.113.45"
    assert alert.severity == "high"
    assert alert.source_ip == "203.0.113.45"
    assert alert.occurrence_count == 2
    detections = SecurityEvent.objects.filter(rule_id="ssh_bruteforce_ip")
    assert detections.count() == 2
    assert {event.alert_id for event in detections} == {alert.pk}
    assert raw_log.alerts_raised == 1
    # Both detections fall in one batch: the alert is published once, as committed.
    (new_alert,) = event_data("new_alert")
    assert (new_alert["id"], new_alert["occurrence_count"]) == (alert.pk, 2)
    assert event_data("alert_updated") == []
    alerts = event_data("security_alert")
    assert [d["alert_id"] for d in alerts] == [str(alert.pk)] * 2
    assert [d["details"]["repeat"] for d in alerts] == [False, True]
    assert [d["details"]["occurrence_count"] for d in alerts] == [1, 2]


# Real commits: each batch is its own transaction, and publishes its own events (in one
# capture block, the batches' events would be merged as one transaction's).
@pytest.mark.django_db(transaction=True)
def test_a_repeat_in_a_later_batch_updates_the_alert(settings):
    settings.LOG_PROCESSING_CHUNK_LINES = 5
    ingest(text(brute_force(26)))

    alert = Alert.objects.get()
    assert alert.occurrence_count == 2
    assert [d["id"] for d in event_data("new_alert")] == [alert.pk]
    assert [d["id"] for d in event_data("alert_updated")] == [alert.pk]


def test_a_new_brute_force_after_the_alert_was_closed_raises_a_new_alert(alice):
    ingest(text(brute_force(10)))
    first = Alert.objects.get()
    services.take_alert_ownership(first.pk, actor=alice)
    services.update_alert_status(first.pk, AlertStatus.RESOLVED, actor=alice)

    ingest(text(brute_force(10, start=3600)))

    assert Alert.objects.count() == 2
    first.refresh_from_db()
    assert first.occurrence_count == 1 and first.status == AlertStatus.RESOLVED


def test_events_below_the_threshold_raise_no_alert(settings):
    settings.ALERT_SEVERITY_THRESHOLD = 10
    raw_log = ingest(text(brute_force(10)))

    assert raw_log.events_created == 1
    assert not Alert.objects.exists()
    assert event_data("security_alert") == []


def test_a_security_event_is_published_with_its_stored_id_and_severity_as_priority():
    ingest(text(brute_force(10)))

    event = SecurityEvent.objects.get()
    published = published_event("security_event")
    assert published.priority == event.severity == 8
    assert published.data["event_id"] == event.event_id
    assert published.data == dict(SecurityEventSerializer(event).data)
    for name in ("severity", "category", "source", "message", "timestamp", "analysis",
                 "recommendations"):  # fmt: skip
        assert name in published.data
    assert published.data["analysis"]["threat_level"] == "high"
    assert published.data["analysis"]["confidence"] == 0.9
    assert published.data["source"] == "auth.log"
    assert published.category == "authentication" and published.source == "auth.log"
    assert event.timestamp == at(180)
    assert event.raw_line == brute_force(10)[-1]


def test_security_alert_uses_the_unified_security_event_format():
    ingest(text(brute_force(10)))

    alert = Alert.objects.get()
    published = published_event("security_alert")
    assert published.priority == 8
    data = published.data
    assert data["alert_id"] == str(alert.pk)
    assert data["severity"] == "high"
    assert data["category"] == "suspicious"
    assert data["source_ip"] == "203.0.113.45"
    assert data["message"].startswith("SSH brute force from 203.0.113.45")
    assert data["details"]["rule_id"] == "ssh_bruteforce_ip"
    assert data["timestamp"].startswith("2025-03-10T14:03:00")


def test_malformed_lines_are_counted_and_reported_but_never_fatal():
    broken_json = '{"timestamp": "2025-03-10T14:00:00Z", "event": "login", "user": '
    too_long = "x" * 70_000
    raw_log = ingest(text([cron_line(0), broken_json, too_long, "hello there", cron_line(5)]))

    assert raw_log.status == RawLogStatus.COMPLETED
    assert raw_log.lines_total == 5
    assert raw_log.lines_malformed == 2
    assert raw_log.lines_unknown == 1
    final = event_data("processing_update")[-1]
    assert final["lines_malformed"] == 2


def test_a_file_that_cannot_be_read_fails_and_says_why(tmp_path):
    path = tmp_path / "auth.log"
    path.write_text(text([cron_line(0)]))
    with TestCase.captureOnCommitCallbacks(execute=True):
        raw_log = receive_log_file(path)
    path.unlink()
    with TestCase.captureOnCommitCallbacks(execute=True):
        raw_log = process_raw_log(raw_log.pk)

    assert raw_log.status == RawLogStatus.FAILED
    assert raw_log.stage == RawLogStatus.PARSING
    assert "cannot read the log" in raw_log.error and str(path) in raw_log.error
    failed = event_data("processing_update")[-1]
    assert (failed["stage"], failed["status"]) == ("parsing", "failed")
    assert failed["error"] == raw_log.error


def test_files_are_read_from_disk_and_gzip_is_decompressed(tmp_path):
    path = tmp_path / "auth.log.1.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(text(brute_force(10)))
    with TestCase.captureOnCommitCallbacks(execute=True):
        raw_log = process_raw_log(receive_log_file(path).pk)

    assert raw_log.status == RawLogStatus.COMPLETED
    assert raw_log.source == "auth.log.1.gz"
    assert raw_log.lines_total == 10 and raw_log.events_created == 1


def test_a_raw_log_is_processed_once():
    raw_log = ingest(text(brute_force(10)))
    again = process_raw_log(raw_log.pk)

    assert again.status == RawLogStatus.COMPLETED
    assert SecurityEvent.objects.count() == 1


def test_processing_an_unknown_raw_log_is_a_clear_error():
    from incidents.exceptions import NotFound

    with pytest.raises(NotFound):
        process_raw_log(999_999)


def test_nul_characters_are_stored_as_replacement_characters():
    raw_log = ingest(text([cron_line(0) + "\x00\x00"]))

    assert "\x00" not in RawLog.objects.get(pk=raw_log.pk).content
    assert raw_log.status == RawLogStatus.COMPLETED


def test_a_login_after_the_brute_force_is_a_critical_alert():
    ingest(text([*brute_force(10), ssh_success(400)]))

    assert set(Alert.objects.values_list("rule_id", "severity")) == {
        ("ssh_bruteforce_ip", "high"),
        ("login_after_bruteforce", "critical"),
    }


# --- threat_detected ------------------------------------------------------------------------


@pytest.fixture
def listed(db):
    """An active feed listing nightowl-relay.example (with subdomains) as phishing."""
    from dns.models import RpzRule, ThreatFeed

    with service_writes():  # setup: the rows as a feed download leaves them
        feed = ThreatFeed.objects.create(
            name="URLhaus", url="https://urlhaus.example/feed.txt", category="malware"
        )
        rule = RpzRule.objects.create(
            domain="nightowl-relay.example", feed=feed, category="phishing", source="URLhaus"
        )
    clear_events()
    return feed, rule


def clear_events():
    from realtime.models import Event

    Event.objects.all().delete()


def published_event(event_type):
    from realtime.models import Event

    return Event.objects.get(event_type=event_type)


def test_a_query_for_a_listed_domain_publishes_threat_detected(listed):
    feed, rule = listed
    raw_log = ingest(
        text([bind_query(0, domain="c2.nightowl-relay.example", qtype="TXT")]), source="bind"
    )

    assert raw_log.events_created == 1
    published = published_event("threat_detected")
    assert published.priority == 8
    assert published.data == {
        "domain": "c2.nightowl-relay.example",
        "client_ip": "10.20.2.57",
        "query_type": "TXT",
        "rule": "nightowl-relay.example",
        "feed": "URLhaus",
        "action": "nxdomain",
        "severity": "high",
        "timestamp": published.data["timestamp"],
        "category": "phishing",
        "source": "bind",
    }
    alert = Alert.objects.get()
    assert published_event("security_alert").data["alert_id"] == str(alert.pk)
    assert published_event("security_alert").data["domain"] == "c2.nightowl-relay.example"


def test_a_query_for_an_unlisted_or_inactive_listing_detects_nothing(listed):
    feed, rule = listed
    feed.is_active = False
    with service_writes():
        feed.save()
    clear_events()
    ingest(text([bind_query(0, domain="c2.nightowl-relay.example"), bind_query(1)]), source="bind")

    assert event_data("threat_detected") == []
    assert not SecurityEvent.objects.exists()


def test_a_manual_rule_without_subdomains_lists_only_its_own_name(db):
    from dns.models import RpzRule
    from incidents.threat_intel import ListedDomains

    with service_writes():
        RpzRule.objects.create(domain="bad.example", include_subdomains=False, category="malware")
    lookup = ListedDomains()
    assert lookup("BAD.example.")["feed"] == "RPZ"
    assert lookup("www.bad.example") is None
    assert lookup("") is None


def test_events_reach_the_event_table_in_commit_order():
    ingest(text(brute_force(10)))

    types = [event_type for event_type, _data in events()]
    assert types.index("security_event") < types.index("processing_update", 3)
