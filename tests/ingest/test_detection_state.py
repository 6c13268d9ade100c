"""Detection state bounded on purpose: the same lines give the same security events and
alerts whatever the Django cache holds and wherever raw logs and chunks are cut."""

import pytest
from django.test import TestCase

from bench.ingest_mix import generate
from incidents.ingest import receive_raw_log
from incidents.models import Alert, RawLog, SecurityEvent
from incidents.pipeline.samples import iter_sample_lines
from incidents.pipeline.state import BoundedState
from incidents.processing import detection_state, process_raw_log, reset_detection_state
from threatlens.writeguard import service_writes

pytestmark = pytest.mark.django_db

TINY_CACHE = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "tiny",
    "OPTIONS": {"MAX_ENTRIES": 10, "CULL_FREQUENCY": 2},
}
LARGE_CACHE = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "large",
    "OPTIONS": {"MAX_ENTRIES": 1_000_000},
}


def sample_and_attack_lines():
    """(source, line) in order: the sample hour, then 1,500 lines of an attack-heavy
    auth.log with hundreds of addresses (far more keys than the tiny cache holds)."""
    lines = [(s.source_hint, s.line) for s in iter_sample_lines()]
    lines += [(m.source, m.text) for m in generate("attack-heavy", 1500, seed=7)]
    return lines


def process(lines, *, lines_per_log):
    """Receive `lines` as raw logs of at most `lines_per_log` consecutive lines of one
    source and process them in order; returns what was detected."""
    logs, current = [], None
    for source, line in lines:
        if current is None or current[0] != source or len(current[1]) >= lines_per_log:
            current = (source, [])
            logs.append(current)
        current[1].append(line)
    with TestCase.captureOnCommitCallbacks(execute=True):
        for source, chunk in logs:
            raw_log = receive_raw_log(source=source, content="\n".join(chunk), actor=None)
            process_raw_log(raw_log.pk)
    return detected()


def detected():
    events = sorted(
        SecurityEvent.objects.values_list("rule_id", "correlation_key", "timestamp", "severity")
    )
    alerts = sorted(Alert.objects.values_list("correlation_key", "occurrence_count", "severity"))
    return events, alerts


def forget_everything():
    SecurityEvent.objects.all().delete()
    with service_writes():  # between runs, as setup
        Alert.objects.all().delete()
    RawLog.objects.all().delete()
    reset_detection_state()


def test_detections_do_not_depend_on_the_cache_size_or_the_batch_boundaries(settings):
    lines = sample_and_attack_lines()
    runs = {}
    for name, cache, per_log, chunk in [
        ("large cache, one batch per source", LARGE_CACHE, 100_000, 100_000),
        ("tiny cache, one batch per source", TINY_CACHE, 100_000, 100_000),
        ("tiny cache, many small batches", TINY_CACHE, 37, 5),
        ("large cache, a line per chunk", LARGE_CACHE, 9, 1),
    ]:
        settings.CACHES = {"default": cache}
        settings.LOG_PROCESSING_CHUNK_LINES = chunk
        forget_everything()
        runs[name] = process(lines, lines_per_log=per_log)

    reference = runs.pop("large cache, one batch per source")
    events, alerts = reference
    assert len(events) > 200 and len(alerts) > 100
    assert {"ssh_bruteforce_ip", "login_after_bruteforce", "web_sql_injection"} <= {
        event[0] for event in events
    }
    for name, result in runs.items():
        assert result == reference, name


def test_a_full_rule_table_evicts_the_stalest_key_and_counts_it():
    state = BoundedState(max_keys=2)
    for ip in ("a", "b"):
        state.count(ip, 100, 300, rule="ssh_bruteforce_ip")
    state.count("a", 101, 300, rule="ssh_bruteforce_ip")  # a is fresher than b now
    state.count("c", 102, 300, rule="ssh_bruteforce_ip")  # b goes

    assert state.peek("a", 102, 300, rule="ssh_bruteforce_ip") == 2
    assert state.peek("b", 102, 300, rule="ssh_bruteforce_ip") == 0
    assert state.stats()["ssh_bruteforce_ip"] == {"keys": 2, "evictions": 1, "expired": 0}
    # Another rule has a table of its own.
    state.count("a", 102, 300, rule="web_404_burst")
    assert state.stats()["web_404_burst"]["keys"] == 1


def test_a_key_past_its_window_is_dropped_as_expired_not_evicted():
    state = BoundedState(max_keys=1)
    state.count("a", 0, 60, rule="r")
    state.count("b", 1000, 60, rule="r")
    assert state.stats()["r"] == {"keys": 1, "evictions": 0, "expired": 1}
    assert state.evictions() == 0


def test_the_process_state_takes_its_size_from_the_setting(settings):
    settings.DETECTION_STATE_MAX_KEYS = 3
    reset_detection_state()
    assert detection_state().max_keys == 3
    assert detection_state() is detection_state()


def test_a_claim_past_its_hold_and_look_back_is_expired_not_an_eviction():
    state = BoundedState(max_keys=1)
    # Two bursts an hour apart: the first claim's hold (300 s) is long over.
    assert state.claim("fired:a", 0, 300, rule="ssh_bruteforce_ip", memory=300)
    assert state.claim("fired:b", 3600, 300, rule="ssh_bruteforce_ip", memory=300)
    assert state.stats()["ssh_bruteforce_ip"] == {"keys": 1, "evictions": 0, "expired": 1}
    # One a rule still looks back at (login_after_bruteforce: within 3600 s) is a loss.
    assert state.claim("fired:c", 4000, 300, rule="ssh_bruteforce_ip", memory=3600)
    assert state.stats()["ssh_bruteforce_ip"] == {"keys": 1, "evictions": 0, "expired": 2}
    assert state.claim("fired:d", 4500, 300, rule="ssh_bruteforce_ip", memory=3600)
    assert state.stats()["ssh_bruteforce_ip"] == {"keys": 1, "evictions": 1, "expired": 2}
