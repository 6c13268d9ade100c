"""How often processing takes the database's write lock.

On SQLite the syslog child and the server share one write lock: every transaction the
child commits is a moment the server's publishes may wait behind (docs/ingest.md). A
raw log costs two write transactions (its chunk, and the chunk's events after the
commit; its `started` and its completion ride along), and the raw logs of one syslog
batch are claimed in one. These tests count them, and check that the stages clients see
stay the same."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from incidents.ingest import receive_raw_log
from incidents.models import RawLog, RawLogStatus
from incidents.processing import process_raw_logs
from tests.ingest.helpers import bind_query, brute_force, cron_line, stages, text

pytestmark = pytest.mark.django_db(transaction=True)

EVERY_STAGE = [
    ("received", "completed"),
    ("parsing", "started"),
    ("analysis", "in_progress"),
    ("completed", "completed"),
]


def write_transactions(work):
    """The times `work()` takes the write lock: each transaction it begins (SQLite names
    each one: BEGIN IMMEDIATE), and each write it makes outside one (one statement in
    autocommit, as an event INSERT is)."""
    if connection.vendor != "sqlite":
        pytest.skip("counts SQLite's BEGIN statements")
    with CaptureQueriesContext(connection) as queries:
        work()
    count, inside = 0, False
    for query in queries.captured_queries:
        verb = query["sql"].split()[0].upper()
        if verb == "BEGIN":
            count, inside = count + 1, True
        elif verb in ("COMMIT", "ROLLBACK"):
            inside = False
        elif verb in ("INSERT", "UPDATE", "DELETE") and not inside:
            count += 1
    return count


def receive(source, lines):
    return receive_raw_log(source=source, content=text(lines), actor=None)


def test_a_batch_of_raw_logs_is_claimed_at_once_and_each_log_costs_two_transactions():
    raw_logs = [
        receive("auth.log", brute_force(12)),
        receive("cron", [cron_line(0), cron_line(60)]),
        receive("bind", [bind_query(0)]),
    ]

    count = write_transactions(lambda: process_raw_logs([raw_log.pk for raw_log in raw_logs]))

    assert count == 1 + 2 * len(raw_logs)
    for raw_log in raw_logs:
        raw_log.refresh_from_db()
        assert raw_log.status == RawLogStatus.COMPLETED and raw_log.finished_at
        assert stages(raw_log.pk) == EVERY_STAGE


def test_a_log_whose_lines_fill_its_last_chunk_completes_with_that_chunk(settings):
    settings.LOG_PROCESSING_CHUNK_LINES = 10
    raw_log = receive("cron", [cron_line(i) for i in range(20)])

    count = write_transactions(lambda: process_raw_logs([raw_log.pk]))

    assert count == 1 + 2 * 2  # two chunks, no third one empty
    raw_log.refresh_from_db()
    assert (raw_log.status, raw_log.lines_total, raw_log.progress) == ("completed", 20, 1.0)
    assert stages(raw_log.pk) == [*EVERY_STAGE[:3], EVERY_STAGE[2], EVERY_STAGE[3]]


def test_a_log_claimed_elsewhere_is_left_to_its_claimer():
    mine = receive("cron", [cron_line(0)])
    theirs = receive("cron", [cron_line(1)])
    RawLog.objects.filter(pk=theirs.pk).update(status=RawLogStatus.PARSING)

    assert process_raw_logs([theirs.pk, mine.pk]) == [mine.pk]
    theirs.refresh_from_db()
    assert theirs.status == RawLogStatus.PARSING and stages(theirs.pk) == [EVERY_STAGE[0]]


def test_a_log_taken_over_while_it_waited_for_its_turn_is_left_to_its_new_owner(
    settings, monkeypatch
):
    """Claimed with its batch, a log waits while the ones before it are processed; one
    left untouched long enough may be taken over by another process's resume pass."""
    from incidents import processing

    settings.RAW_LOG_RESUME_AFTER = 0  # every log of the batch is claimed again first
    first = receive("cron", [cron_line(0)])
    second = receive("cron", [cron_line(1)])
    run = processing._Run.run

    def run_then_another_process_takes_the_second(self):
        run(self)
        if self.raw_log.pk == first.pk:
            RawLog.objects.filter(pk=second.pk).update(updated_at=timezone.now())

    monkeypatch.setattr(processing._Run, "run", run_then_another_process_takes_the_second)

    assert process_raw_logs([first.pk, second.pk]) == [first.pk]
    second.refresh_from_db()
    assert second.status == RawLogStatus.PARSING and stages(second.pk) == [EVERY_STAGE[0]]
