"""Following log files: appended lines, unfinished lines, rotation, truncation."""

import os

import pytest
from django.test import TestCase

from incidents.models import RawLog
from incidents.watcher import LogWatcher, WatchService, WatchTarget, store_and_process
from tests.ingest.helpers import brute_force, cron_line, event_data, stages, text
from tests.waiting import wait_until


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def append(path, content):
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(content)


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "auth.log"
    path.write_text("old line 1\nold line 2\n")
    return path


def collecting_watcher(path, **options):
    """A watcher whose flushes are collected as (source, lines) instead of stored."""
    batches = []
    watcher = LogWatcher(
        [WatchTarget.parse(str(path))],
        submit=lambda target, lines: batches.append((target.source, list(lines))),
        **options,
    )
    return watcher, batches


def test_the_watcher_picks_up_appended_lines_only(log_file):
    watcher, batches = collecting_watcher(log_file, interval=0)
    watcher.step()
    assert batches == []  # what was there before it started is not read

    append(log_file, "new line 1\nnew line 2\n")
    watcher.step()
    assert batches == [("auth.log", ["new line 1", "new line 2"])]


def test_from_start_reads_what_is_already_there(log_file):
    watcher, batches = collecting_watcher(log_file, interval=0, from_start=True)
    watcher.step()
    assert batches == [("auth.log", ["old line 1", "old line 2"])]


def test_an_unfinished_line_waits_for_its_newline(log_file):
    watcher, batches = collecting_watcher(log_file, interval=0)
    watcher.step()
    append(log_file, "half a li")
    watcher.step()
    assert batches == []
    append(log_file, "ne\n")
    watcher.step()
    assert batches == [("auth.log", ["half a line"])]


def test_lines_read_within_an_interval_make_one_batch(log_file):
    clock = Clock()
    watcher, batches = collecting_watcher(log_file, interval=5, clock=clock)
    watcher.poll()
    append(log_file, "a\n")
    watcher.poll()
    append(log_file, "b\n")
    watcher.step()
    assert batches == []
    clock.now += 5
    watcher.step()
    assert batches == [("auth.log", ["a", "b"])]


def test_a_big_batch_goes_out_before_the_interval_ends(log_file):
    watcher, batches = collecting_watcher(
        log_file, interval=3600, max_batch_bytes=20, clock=Clock()
    )
    watcher.poll()
    append(log_file, "".join(f"line number {i}\n" for i in range(10)))
    watcher.step()
    assert batches == [("auth.log", [f"line number {i}" for i in range(10)])]


def test_a_large_backlog_is_read_a_batch_at_a_time(log_file):
    watcher, batches = collecting_watcher(log_file, interval=0, from_start=True, max_batch_bytes=1)
    lines = [f"{i:05d} " + "x" * 60 for i in range(3000)]  # about 200 kB
    log_file.write_text(text(lines))
    watcher.step()
    assert watcher.has_backlog and 0 < len(batches[0][1]) < len(lines)
    while watcher.has_backlog:
        watcher.step()
    assert [line for _source, batch in batches for line in batch] == lines


def test_a_file_rotated_by_rename_is_read_to_its_end_then_the_new_file(log_file):
    watcher, batches = collecting_watcher(log_file, interval=0)
    watcher.step()
    append(log_file, "before rotation\nlast words without newline")
    os.rename(log_file, log_file.with_name("auth.log.1"))
    log_file.write_text("first line of the new file\n")
    watcher.step()

    assert batches == [
        (
            "auth.log",
            ["before rotation", "last words without newline", "first line of the new file"],
        )
    ]
    append(log_file, "second line of the new file\n")
    watcher.step()
    assert batches[-1] == ("auth.log", ["second line of the new file"])


def test_a_vanished_file_is_waited_for(log_file):
    watcher, batches = collecting_watcher(log_file, interval=0)
    watcher.step()
    os.rename(log_file, log_file.with_name("auth.log.1"))
    watcher.step()
    assert batches == []
    log_file.write_text("it is back\n")
    watcher.step()
    assert batches == [("auth.log", ["it is back"])]


def test_a_truncated_file_is_read_again_from_its_start(log_file):
    watcher, batches = collecting_watcher(log_file, interval=0)
    watcher.step()
    append(log_file, "one\n")
    watcher.step()
    with open(log_file, "w") as handle:  # copytruncate
        handle.write("x\n")
    watcher.step()
    assert batches == [("auth.log", ["one"]), ("auth.log", ["x"])]


def test_a_file_that_does_not_exist_yet_is_picked_up_when_it_appears(tmp_path):
    path = tmp_path / "later.log"
    watcher, batches = collecting_watcher(path, interval=0)
    watcher.step()
    assert watcher.status()[1] == [str(path)]
    path.write_text("hello\n")
    watcher.step()
    assert batches == [("later.log", ["hello"])]


def test_watch_targets_are_parsed_from_settings_items():
    assert WatchTarget.parse("/var/log/auth.log") == WatchTarget("/var/log/auth.log", "auth.log")
    assert WatchTarget.parse("web=/var/log/nginx/access.log") == WatchTarget(
        "/var/log/nginx/access.log", "web"
    )
    assert WatchTarget.parse("/x/a=b.log").path == "/x/a=b.log"
    assert WatchTarget.parse("/x/y.log", source="s").source == "s"


@pytest.mark.django_db
def test_watched_lines_become_processed_raw_logs(log_file):
    watcher = LogWatcher([WatchTarget.parse(str(log_file))], interval=0)
    watcher.poll()
    append(log_file, text(brute_force(10)))
    with TestCase.captureOnCommitCallbacks(execute=True):
        (raw_log,) = watcher.step()

    assert raw_log.status == "completed"
    assert raw_log.source == "auth.log" and raw_log.file_name == str(log_file)
    assert raw_log.events_created == 1
    assert stages(raw_log.pk)[-1] == ("completed", "completed")
    assert watcher.status()[0]["events_processed"] == 1


@pytest.mark.django_db(transaction=True)
def test_the_watch_service_follows_files_in_a_thread_and_reports_its_health(log_file):
    service = WatchService([WatchTarget.parse(str(log_file))], interval=0.05).start()
    try:
        append(log_file, text([cron_line(0)]))
        wait_until(
            RawLog.objects.filter(status="completed").exists, "the appended line is processed"
        )
        assert RawLog.objects.filter(status="completed").count() == 1
        health = service.health()
        assert health.component == "file_monitor" and health.status == "healthy"
        assert health.metrics["files_monitored"] == 1
    finally:
        service.stop()
    assert service.health().status == "critical"  # stopped


def test_store_and_process_refuses_nothing_but_empty_batches(db):
    from incidents.exceptions import ValidationError

    with pytest.raises(ValidationError):
        store_and_process(WatchTarget("/tmp/x.log", "x.log"), ["   "])
    assert event_data("processing_update") == []
