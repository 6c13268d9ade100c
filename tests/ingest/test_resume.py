"""Raw logs a crash left behind are finished at start-up, each line processed once."""

import pytest
from django.test import TestCase

from bench.ingest_mix import generate
from incidents import processing
from incidents.ingest import receive_raw_log
from incidents.models import RawLog, RawLogStatus, SecurityEvent
from incidents.processing import process_raw_log, reset_detection_state, resume_interrupted
from incidents.sigma import runtime
from incidents.sigma.services import upload_rule
from tests.ingest.test_detection_state import detected, forget_everything
from tests.sigma.helpers import correlation_yaml, rule_yaml

pytestmark = pytest.mark.django_db


class Crash(BaseException):
    """The process dying mid-stage: nothing catches it, nothing is marked failed."""


def receive(lines):
    return receive_raw_log(source="auth.log", content="\n".join(lines), actor=None)


def attack_log():
    return receive([m.text for m in generate("attack-heavy", 600, seed=11)])


def crash_at_the_fifth_chunk(monkeypatch, raw_log):
    """Process `raw_log` until its fifth chunk, where the process "dies"."""
    real_chunk = processing._Run._process_chunk
    chunks = []

    def crashing(self, chunk):
        if len(chunks) == 4:
            raise Crash()
        chunks.append(chunk)
        real_chunk(self, chunk)

    monkeypatch.setattr(processing._Run, "_process_chunk", crashing)
    with pytest.raises(Crash), TestCase.captureOnCommitCallbacks(execute=True):
        process_raw_log(raw_log.pk)
    monkeypatch.setattr(processing._Run, "_process_chunk", real_chunk)


@pytest.mark.parametrize("resume_chunk_lines", [50, 70])
def test_a_log_interrupted_mid_stage_is_resumed_and_gives_what_a_clean_run_gives(
    settings, monkeypatch, resume_chunk_lines
):
    settings.LOG_PROCESSING_CHUNK_LINES = 50
    with TestCase.captureOnCommitCallbacks(execute=True):
        process_raw_log(attack_log().pk)
    clean = detected()
    assert len(clean[0]) > 50 and len(clean[1]) > 20

    forget_everything()
    raw_log = attack_log()
    crash_at_the_fifth_chunk(monkeypatch, raw_log)
    raw_log.refresh_from_db()
    assert (raw_log.status, raw_log.lines_total) == (RawLogStatus.ANALYSIS, 200)
    assert detected() != clean

    reset_detection_state()  # the process's memory died with it
    # Restarted with another chunk size: the counted lines are analysed again first, in
    # order, even when they do not fill whole chunks.
    settings.LOG_PROCESSING_CHUNK_LINES = resume_chunk_lines
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert resume_interrupted(stale_after=0) == [raw_log.pk]

    raw_log.refresh_from_db()
    assert (raw_log.status, raw_log.lines_total) == (RawLogStatus.COMPLETED, 600)
    assert detected() == clean
    assert resume_interrupted(stale_after=0) == []


def test_a_raw_log_stored_but_never_processed_is_processed():
    raw_log = attack_log()
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert resume_interrupted(stale_after=0) == [raw_log.pk]
    raw_log.refresh_from_db()
    assert raw_log.status == RawLogStatus.COMPLETED
    assert raw_log.events_created > 0


def test_a_log_a_live_receiver_just_stored_is_left_to_it():
    # Its sink processes it next: taken by the resume pass too, its lines would be
    # processed out of order with those stored after it.
    raw_log = attack_log()
    assert resume_interrupted(stale_after=60) == []
    raw_log.refresh_from_db()
    assert raw_log.status == RawLogStatus.RECEIVED


def test_a_log_another_process_is_working_on_is_left_alone():
    raw_log = attack_log()
    RawLog.objects.filter(pk=raw_log.pk).update(status=RawLogStatus.ANALYSIS)
    assert resume_interrupted(stale_after=60) == []
    raw_log.refresh_from_db()
    assert raw_log.status == RawLogStatus.ANALYSIS


@pytest.mark.parametrize("replay_lines", [100_000, 0])
def test_the_logs_completed_before_the_crash_rebuild_the_detection_state(replay_lines):
    lines = [m.text for m in generate("attack-heavy", 600, seed=12)]

    with TestCase.captureOnCommitCallbacks(execute=True):
        process_raw_log(receive(lines[:300]).pk)
        process_raw_log(receive(lines[300:]).pk)
    clean = detected()

    forget_everything()
    with TestCase.captureOnCommitCallbacks(execute=True):
        process_raw_log(receive(lines[:300]).pk)
        second = receive(lines[300:])  # stored; the process dies before processing it
        reset_detection_state()
        assert resume_interrupted(stale_after=0, replay_lines=replay_lines) == [second.pk]

    # Without the replay, bursts that straddle the two logs are missed or fire again.
    assert (detected() == clean) == (replay_lines > 0)


FAILED_LOGIN = rule_yaml(
    "selection: {action: login_failure}\ncondition: selection",
    title="Failed SSH login (test)",
    name="test_failed_login",
    level="low",
)
BURST = correlation_yaml(
    """
    type: event_count
    rules: [test_failed_login]
    group-by: [src_ip]
    timespan: 10m
    condition: {gte: 5}
    """,
    title="Failed SSH logins from one address (test)",
)


@pytest.fixture
def sigma_burst_rule(settings):
    """A Sigma correlation that replaces no built-in rule: it runs in the Sigma engine,
    its windows and claims in the detection state."""
    settings.SIGMA_RELOAD_SECONDS = 0
    with TestCase.captureOnCommitCallbacks(execute=True):
        upload_rule(FAILED_LOGIN, actor=None)
        upload_rule(BURST, actor=None)
    runtime.forget_engine()
    yield
    runtime.forget_engine()


def test_a_resumed_log_replays_its_sigma_lines_too_and_gives_what_a_clean_run_gives(
    settings, monkeypatch, sigma_burst_rule
):
    settings.LOG_PROCESSING_CHUNK_LINES = 50
    with TestCase.captureOnCommitCallbacks(execute=True):
        process_raw_log(attack_log().pk)
    clean = detected()
    sigma_events = SecurityEvent.objects.filter(rule_id__startswith="sigma:").count()
    assert sigma_events > 5

    forget_everything()
    raw_log = attack_log()
    crash_at_the_fifth_chunk(monkeypatch, raw_log)

    reset_detection_state()  # the process's memory died with it
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert resume_interrupted(stale_after=0) == [raw_log.pk]

    assert detected() == clean
    assert SecurityEvent.objects.filter(rule_id__startswith="sigma:").count() == sigma_events


def test_the_completed_logs_replayed_before_a_resume_replay_their_sigma_lines_chunk_by_chunk(
    settings, monkeypatch, sigma_burst_rule
):
    settings.LOG_PROCESSING_CHUNK_LINES = 50
    lines = [m.text for m in generate("attack-heavy", 600, seed=12)]

    with TestCase.captureOnCommitCallbacks(execute=True):
        process_raw_log(receive(lines[:300]).pk)
        process_raw_log(receive(lines[300:]).pk)
    clean = detected()

    forget_everything()
    replayed = []
    real_replay = processing.ChunkDetector.replay

    def spy(self, numbered):
        replayed.append(len(numbered))
        real_replay(self, numbered)

    monkeypatch.setattr(processing.ChunkDetector, "replay", spy)
    with TestCase.captureOnCommitCallbacks(execute=True):
        process_raw_log(receive(lines[:300]).pk)
        second = receive(lines[300:])  # stored; the process dies before processing it
        reset_detection_state()
        assert resume_interrupted(stale_after=0) == [second.pk]

    assert replayed == [50] * 6  # the first log's 300 lines, one call per chunk
    assert detected() == clean
