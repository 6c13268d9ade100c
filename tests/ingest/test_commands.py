"""ingest_logs, watch_logs, replay_sample_logs and prune_events."""

import gzip
import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from incidents.management.notes import delivery_note
from incidents.models import Alert, RawLog, RawLogStatus, SecurityEvent
from incidents.pipeline.samples import SAMPLE_THREAT_DOMAINS
from realtime.models import Event
from tests.ingest.helpers import brute_force, cron_line, event_data, text

# The commands publish outside any test transaction's on_commit capture: they need commits.
pytestmark = pytest.mark.django_db(transaction=True)


def run(*args, stdin=None, **options):
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        import sys

        original, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        call_command(*args, stdout=out, stderr=err, **options)
    finally:
        if stdin is not None:
            sys.stdin = original
    return out.getvalue(), err.getvalue()


# --- ingest_logs ---------------------------------------------------------------------------------


def test_ingest_logs_processes_each_file_and_says_what_it_found(tmp_path):
    auth = tmp_path / "auth.log"
    auth.write_text(text(brute_force(10)))
    other = tmp_path / "old.log.gz"
    with gzip.open(other, "wt") as handle:
        handle.write(text([cron_line(0)]))

    out, _err = run("ingest_logs", str(auth), str(other))

    assert f"auth.log: raw log {RawLog.objects.get(source='auth.log').pk} completed" in out
    assert "10 lines (0 malformed, 0 unrecognised), 1 security events, 1 new alerts" in out
    assert "old.log.gz" in out
    assert delivery_note() in out  # how the events reach a running server
    assert RawLog.objects.filter(status=RawLogStatus.COMPLETED).count() == 2
    assert event_data("security_event") and event_data("new_alert")


def test_ingest_logs_takes_a_source_name_and_standard_input():
    out, _err = run("ingest_logs", "-", "--source", "web01-auth", stdin=text(brute_force(10)))

    raw_log = RawLog.objects.get()
    assert raw_log.source == "web01-auth"
    assert SecurityEvent.objects.get().source == "web01-auth"
    assert "completed" in out


def test_ingest_logs_refuses_missing_files_before_ingesting_anything(tmp_path):
    good = tmp_path / "auth.log"
    good.write_text(text([cron_line(0)]))
    with pytest.raises(CommandError, match="no such file"):
        run("ingest_logs", str(good), str(tmp_path / "missing.log"))
    assert not RawLog.objects.exists()


def test_ingest_logs_exits_non_zero_when_a_log_fails(tmp_path, monkeypatch):
    path = tmp_path / "auth.log"
    path.write_text(text([cron_line(0)]))
    monkeypatch.setattr("incidents.raw_log_lines.file_lines", _unreadable)

    with pytest.raises(CommandError, match="1 of 1 logs failed") as caught:
        run("ingest_logs", str(path))
    assert caught.value.returncode == 1
    assert RawLog.objects.get().status == RawLogStatus.FAILED


def _unreadable(path):
    raise PermissionError(13, "Permission denied", str(path))
    yield  # a generator, like the real one


# --- watch_logs ----------------------------------------------------------------------------------


def test_watch_logs_once_from_start_ingests_the_files_as_they_are(tmp_path):
    path = tmp_path / "auth.log"
    path.write_text(text(brute_force(10)))

    out, _err = run("watch_logs", f"ssh={path}", "--once", "--from-start")

    assert f"Following {path} as source 'ssh'" in out
    raw_log = RawLog.objects.get()
    assert raw_log.source == "ssh" and raw_log.events_created == 1


def test_watch_logs_refuses_a_bad_interval(tmp_path):
    with pytest.raises(CommandError, match="--interval"):
        run("watch_logs", str(tmp_path / "x.log"), "--interval", "0")


# --- replay_sample_logs --------------------------------------------------------------------------


def test_replay_sample_logs_seeds_the_demo_feed_and_brings_the_dashboard_alive():
    out, err = run("replay_sample_logs", "--speed", "0")

    assert err == ""
    assert "Demo threat feeds: 3 domains added, 3 listed." in out
    assert "Replayed" in out
    sources = set(RawLog.objects.values_list("source", flat=True))
    assert sources == {"auth.log", "access.log", "queries.log", "portal.jsonl"}
    assert not RawLog.objects.exclude(status=RawLogStatus.COMPLETED).exists()
    rules = set(Alert.objects.values_list("rule_id", flat=True))
    assert {"ssh_bruteforce_ip", "login_after_bruteforce", "web_sql_injection",
            "login_bruteforce_ip", "dns_threat_feed_match"} <= rules  # fmt: skip
    detected = {data["domain"] for data in event_data("threat_detected")}
    assert "secure-login.account-verify.example" in detected
    assert any(domain.endswith("nightowl-relay.example") for domain in detected)
    # Replayed lines are placed in the past, ending now.
    latest = SecurityEvent.objects.order_by("-timestamp").first().timestamp
    assert latest <= timezone.now() + timedelta(seconds=1)
    assert latest >= timezone.now() - timedelta(hours=1)


@pytest.fixture
def dns_samples_only(monkeypatch):
    """The replay reads only the BIND query log of the samples (a quick replay)."""
    from incidents.management.commands import replay_sample_logs

    every_line = replay_sample_logs.iter_sample_lines

    def queries_only(directory=None, *, rebase_to=None):
        for line in every_line(directory, rebase_to=rebase_to):
            if line.source == "queries.log":
                yield line

    monkeypatch.setattr(replay_sample_logs, "iter_sample_lines", queries_only)


def test_the_demo_feeds_are_imported_once():
    from incidents.demo_feed import seed_demo_feeds

    assert seed_demo_feeds().message == "Demo threat feeds: 3 domains added, 3 listed."
    assert seed_demo_feeds().message == "Demo threat feeds: 0 domains added, 3 listed."


def test_replay_without_the_feed_detects_no_threats(dns_samples_only):
    out, _err = run("replay_sample_logs", "--speed", "0", "--no-feed")

    assert "threat feeds" not in out
    assert RawLog.objects.get().source == "queries.log"
    assert event_data("threat_detected") == []


def test_replay_without_the_dns_app_says_so(monkeypatch, dns_samples_only):
    monkeypatch.setattr("incidents.demo_feed.dns_available", lambda: False)
    monkeypatch.setattr("incidents.processing.domain_lookup", lambda: None)
    out, _err = run("replay_sample_logs", "--speed", "0")
    assert "DNS app is not installed" in out
    assert event_data("threat_detected") == []


def test_replay_at_a_speed_waits_between_batches(monkeypatch, dns_samples_only):
    from incidents.management.commands import replay_sample_logs

    class Clock:
        now, slept = 0.0, []

        @classmethod
        def monotonic(cls):
            return cls.now

        @classmethod
        def sleep(cls, seconds):
            cls.slept.append(seconds)
            cls.now += seconds

    monkeypatch.setattr(replay_sample_logs, "time", Clock)
    run("replay_sample_logs", "--speed", "5000", "--no-feed")

    assert Clock.slept and 0.6 < Clock.now < 0.75  # the hour of queries at 5000x
    assert RawLog.objects.count() > 1


def test_replay_refuses_a_negative_speed():
    with pytest.raises(CommandError, match="--speed"):
        run("replay_sample_logs", "--speed", "-1")


def test_the_demo_feed_files_list_the_sample_threat_domains_by_category():
    from incidents.demo_feed import demo_feeds

    listed = {}
    for category, path in demo_feeds().values():
        for line in path.read_text().splitlines():
            if line and not line.startswith("#"):
                listed[line] = category
    assert listed == SAMPLE_THREAT_DOMAINS


# --- prune_events --------------------------------------------------------------------------------


def make_old_things(age):
    then = timezone.now() - age
    Event.objects.create(event_type="system_metrics", priority=4, data={}, origin="t")
    Event.objects.filter(pk__in=Event.objects.values("pk")).update(created_at=then)
    Event.objects.create(event_type="system_metrics", priority=4, data={}, origin="t")
    finished = RawLog.objects.create(source="a", status=RawLogStatus.COMPLETED, received_at=then)
    RawLog.objects.create(source="b", status=RawLogStatus.ANALYSIS, received_at=then)
    RawLog.objects.create(source="c", status=RawLogStatus.FAILED)
    SecurityEvent.objects.create(
        severity=5, category="x", source="a", message="old", timestamp=then, created_at=then,
        raw_log=finished,
    )  # fmt: skip
    SecurityEvent.objects.create(
        severity=5, category="x", source="a", message="new", timestamp=then
    )


def test_prune_events_deletes_what_is_past_retention_and_prints_counts():
    make_old_things(timedelta(days=8))

    out, _err = run("prune_events", "--older-than", "7d")

    assert out.startswith("Deleted 1 events, 1 security events, 1 raw logs older than")
    assert Event.objects.count() == 1
    assert list(SecurityEvent.objects.values_list("message", flat=True)) == ["new"]
    # A raw log still being processed is never pruned.
    assert set(RawLog.objects.values_list("source", flat=True)) == {"b", "c"}


def test_prune_events_dry_run_deletes_nothing():
    make_old_things(timedelta(days=8))
    out, _err = run("prune_events", "--older-than", "7d", "--dry-run")
    assert out.startswith("Would delete 1 events, 1 security events, 1 raw logs")
    assert Event.objects.count() == 2 and RawLog.objects.count() == 3


@pytest.mark.parametrize("value", ["seven days", "7w", "-1d", "0", ""])
def test_prune_events_refuses_a_bad_duration(value):
    make_old_things(timedelta(days=8))
    with pytest.raises(CommandError, match="is not a duration"):
        run("prune_events", f"--older-than={value}")
    assert Event.objects.count() == 2


def test_prune_events_warns_when_shorter_than_the_replay_window():
    _out, err = run("prune_events", "--older-than", "10m")
    assert "shorter than the replay window" in err
