"""A process's one processing worker: jobs and turns one at a time, first in, first out;
background uploads go to it, inline ones take a turn in their request."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from incidents import ingest, processing_worker
from incidents.models import RawLogStatus
from incidents.processing_worker import ProcessingWorker
from tests.ingest.helpers import brute_force
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def queued(worker, count):
    """Wait until `count` jobs or turns were handed to `worker` and not taken yet."""
    wait_until(lambda: worker.waiting() == count, f"{count} queued")


def test_jobs_and_turns_run_one_at_a_time_in_the_order_they_came():
    worker = ProcessingWorker()
    gate = threading.Event()
    order, running, overlaps = [], [], []

    def work(name):
        running.append(name)
        if len(running) > 1:
            overlaps.append(tuple(running))
        if name == "first":
            gate.wait(5)
        time.sleep(0.01)
        order.append(name)
        running.remove(name)

    first = worker.submit(work, "first")
    wait_until(lambda: running == ["first"], "the first job running")

    def in_turn(name):
        with worker.turn():
            work(name)

    threads, futures = [], []
    for n in range(3):
        futures.append(worker.submit(work, f"job{n}"))
        queued(worker, 2 * n + 1)
        thread = threading.Thread(target=in_turn, args=(f"turn{n}",))
        thread.start()
        threads.append(thread)
        queued(worker, 2 * n + 2)
    gate.set()
    first.result(5)
    for future in futures:
        future.result(5)
    for thread in threads:
        thread.join(5)

    assert order == ["first", "job0", "turn0", "job1", "turn1", "job2", "turn2"]
    assert overlaps == []


def test_a_turn_taken_again_inside_a_turn_or_by_the_worker_does_not_wait_for_itself():
    worker = ProcessingWorker()
    with worker.turn(), worker.turn():
        assert worker.holds_turn()
    assert not worker.holds_turn()

    def nested():
        with worker.turn():
            return "done"

    assert worker.submit(nested).result(5) == "done"


def test_a_failing_job_gives_its_error_to_the_caller_and_the_worker_goes_on():
    worker = ProcessingWorker()
    failed = worker.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failed.result(5)
    assert worker.submit(lambda: "next").result(5) == "next"


def test_a_turn_given_up_while_waiting_does_not_hold_up_the_worker():
    """A caller interrupted before its turn came (a signal, a stop) still hands it back:
    the worker goes on with what came after it."""
    worker = ProcessingWorker()
    gate = threading.Event()
    worker.submit(gate.wait, 5)  # the worker is busy: a turn asked for now waits

    class GaveUp(Exception):
        pass

    def give_up(signum, frame):
        raise GaveUp

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        with pytest.raises(GaveUp), worker.turn():
            pytest.fail("the turn came while the worker was busy")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    after = worker.submit(lambda: "after")
    gate.set()
    assert after.result(timeout=5) == "after"


def test_one_worker_per_process():
    assert processing_worker.processing_worker() is processing_worker.processing_worker()


@pytest.mark.django_db(transaction=True)
def test_a_background_upload_is_processed_by_the_worker_thread(
    settings, monkeypatch, upload, alice
):
    settings.LOG_PROCESSING = "thread"
    seen = []
    real = ingest.process_raw_log

    def spy(raw_log_id, **kwargs):
        seen.append(threading.current_thread().name)
        return real(raw_log_id, **kwargs)

    monkeypatch.setattr(ingest, "process_raw_log", spy)
    response = upload(alice, source="auth.log", content="\n".join(brute_force(12)))
    assert ingest.wait_for_background_processing(timeout=30)

    assert response.status_code == 202
    assert response.json()["status"] == RawLogStatus.RECEIVED
    assert seen == ["log-processing"]


def test_an_inline_upload_answers_with_its_raw_log_processed(upload, alice):
    response = upload(alice, source="auth.log", content="\n".join(brute_force(12)))
    assert response.status_code == 202
    assert response.json()["status"] == RawLogStatus.COMPLETED


def test_at_exit_the_raw_logs_handed_to_the_worker_are_processed_first(tmp_path):
    script = (
        "import time, django\n"
        "django.setup()\n"
        "from incidents import ingest\n"
        "def slow(raw_log_id):\n"
        "    time.sleep(0.5)\n"
        "    print('processed', raw_log_id, flush=True)\n"
        "ingest._process_in_worker = slow\n"
        "ingest._submit(7)\n"
        "ingest._submit(8)\n"
    )
    env = {
        key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="threatlens.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        PYTHONPATH=str(ROOT),
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:2] == ["processed 7", "processed 8"]


def test_a_removed_setting_still_set_is_named_by_manage_py_check(monkeypatch):
    from incidents.checks import removed_settings

    monkeypatch.delenv("LOG_PROCESSING_WORKERS", raising=False)
    assert removed_settings(None) == []
    monkeypatch.setenv("LOG_PROCESSING_WORKERS", "4")
    [warning] = removed_settings(None)
    assert warning.id == "incidents.W001" and "LOG_PROCESSING_WORKERS" in warning.msg
