"""manage.py watch_logs PATH... [--source NAME] [--interval S] [--from-start] [--once]"""

import time

from django.core.management.base import BaseCommand, CommandError

from incidents.conf import pipeline_setting
from incidents.management.notes import delivery_note, summary
from incidents.watcher import LogWatcher, WatchTarget, publish_file_monitor_status
from threatlens.audit.context import audit_context

STATUS_INTERVAL = 30.0


class Command(BaseCommand):
    help = (
        "Follow log files as they grow (like tail -F: through rotation by rename or "
        "truncation) and feed their new lines through the detection pipeline, one raw log "
        "per file per interval. Stops on Ctrl-C after storing what it read."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "paths", nargs="+", metavar="PATH", help="Files to follow (or source=PATH)."
        )
        parser.add_argument("--source", help="Source name for every file (default: its name).")
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="Seconds between batches (default: WATCH_LOGS_INTERVAL, 2).",
        )
        parser.add_argument(
            "--from-start",
            action="store_true",
            help="Also read what the files already hold (default: only new lines).",
        )
        parser.add_argument(
            "--once",
            action="store_true",
            help="Read once, store what was read and exit (with --from-start: ingest the "
            "files as they are now).",
        )

    def handle(self, *args, paths, source, interval, from_start, once, **options):
        interval = pipeline_setting("WATCH_LOGS_INTERVAL") if interval is None else interval
        if interval <= 0:
            raise CommandError("--interval must be a positive number of seconds.")
        targets = [WatchTarget.parse(path, source=source) for path in paths]
        watcher = LogWatcher(
            targets, from_start=from_start, interval=interval, submit=self._submit(targets)
        )
        for target in targets:
            self.stdout.write(f"Following {target.path} as source {target.source!r}.")
        self.stdout.write(delivery_note())
        next_status = 0.0
        try:
            with audit_context(source="manage.py watch_logs"):
                watcher.poll()
                if once:
                    watcher.flush(force=True)
                    return
                while True:
                    watcher.step()
                    missing = watcher.status()[1]
                    if time.monotonic() >= next_status:
                        next_status = time.monotonic() + STATUS_INTERVAL
                        publish_file_monitor_status(watcher)
                        for path in missing:
                            self.stderr.write(f"Waiting for {path} to appear.")
                    if not watcher.has_backlog:
                        time.sleep(min(interval, 1.0))
        except KeyboardInterrupt:
            with audit_context(source="manage.py watch_logs"):
                watcher.flush(force=True)
            self.stdout.write("Stopped.")
        finally:
            watcher.close()

    def _submit(self, targets):
        from incidents.watcher import store_and_process

        def submit(target, lines):
            raw_log = store_and_process(target, lines)
            self.stdout.write(summary(raw_log))
            return raw_log

        return submit
