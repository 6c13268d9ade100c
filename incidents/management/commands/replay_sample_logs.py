"""manage.py replay_sample_logs [--speed N] [--no-feed]"""

import time
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from incidents.conf import pipeline_setting
from incidents.demo_feed import seed_demo_feeds
from incidents.ingest import receive_raw_log
from incidents.management.notes import delivery_note
from incidents.pipeline.samples import iter_sample_lines
from incidents.processing import process_raw_log
from threatlens.audit.context import audit_context

# At a speed above 0, lines read within this many seconds (wall clock) go out together.
BATCH_SECONDS = 1.0


class Command(BaseCommand):
    help = (
        "Feed the sample logs shipped with ThreatLens (an hour at a fictional company, with "
        "an SSH brute force, a web scan, credential stuffing and queries for listed domains) "
        "through the pipeline, as if they were being written now, so the dashboard comes "
        "alive. Imports the demo threat feeds first (unless --no-feed)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--speed",
            type=float,
            default=60.0,
            help="How many times faster than real time (default 60: the hour in a minute); "
            "0 replays as fast as possible.",
        )
        parser.add_argument(
            "--no-feed", action="store_true", help="Do not import the demo threat feeds."
        )

    def handle(self, *args, speed, no_feed, **options):
        self.verbosity = options.get("verbosity", 1)
        if speed < 0 or speed != speed:
            raise CommandError("--speed must be 0 (as fast as possible) or a positive number.")
        with audit_context(source="manage.py replay_sample_logs"):
            if not no_feed:
                try:
                    result = seed_demo_feeds()
                except Exception as exc:  # the DNS app's validation or a schema in flux
                    self.stderr.write(f"Could not import the demo threat feeds: {exc}")
                else:
                    self.stdout.write(result.message)
            totals = self._replay(speed)
        self.stdout.write(
            self.style.SUCCESS(
                f"Replayed {totals['lines']} lines in {totals['raw_logs']} raw logs: "
                f"{totals['events']} security events, {totals['alerts']} new alerts."
            )
        )
        self.stdout.write(delivery_note())

    def _replay(self, speed):
        duration = max((line.offset for line in iter_sample_lines()), default=0.0)
        started_wall = time.monotonic()
        now = timezone.now()
        # Line times stay in the past of the wall clock whatever the speed: the hour is
        # placed so that its last line falls when the replay reaches it.
        lag = duration if speed == 0 else duration * max(0.0, 1.0 - 1.0 / speed)
        start = now - timedelta(seconds=lag)
        totals = {"lines": 0, "raw_logs": 0, "events": 0, "alerts": 0}
        pending = {}
        last_flush = time.monotonic()
        chunk = max(1, int(pipeline_setting("LOG_PROCESSING_CHUNK_LINES")))
        self.stdout.write(
            f"Replaying {duration / 60:.0f} minutes of logs "
            + ("as fast as possible." if speed == 0 else f"at {speed:g}x.")
        )
        for line in iter_sample_lines(rebase_to=start):
            if speed:
                due = started_wall + line.offset / speed
                if due - time.monotonic() > 0.05 or time.monotonic() - last_flush >= BATCH_SECONDS:
                    self._flush(pending, totals)
                    last_flush = time.monotonic()
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
            pending.setdefault(line.source, []).append(line.line)
            totals["lines"] += 1
            if len(pending[line.source]) >= chunk:
                self._flush(pending, totals, only=line.source)
        self._flush(pending, totals)
        return totals

    def _flush(self, pending, totals, only=None):
        for source in [only] if only else list(pending):
            lines = pending.pop(source, None)
            if not lines:
                continue
            raw_log = receive_raw_log(
                source=source,
                content="\n".join(lines),
                file_name=source,
                actor=None,
                audit=False,
            )
            raw_log = process_raw_log(raw_log.pk)
            totals["raw_logs"] += 1
            totals["events"] += raw_log.events_created
            totals["alerts"] += raw_log.alerts_raised
            if self.verbosity >= 2 or raw_log.events_created:
                self.stdout.write(
                    f"{timezone.localtime():%H:%M:%S} {source}: {len(lines)} lines, "
                    f"{raw_log.events_created} security events"
                    + (f", {raw_log.alerts_raised} new alerts" if raw_log.alerts_raised else "")
                )
