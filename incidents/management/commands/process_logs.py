"""manage.py process_logs [--poll S] [--once]"""

import signal
import threading
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from incidents.conf import pipeline_setting
from incidents.processing import process_next_raw_log, resume_interrupted, uses_shared_state


class Command(BaseCommand):
    help = (
        "A processing worker: takes the stored raw logs no other worker has taken (oldest "
        "first) and processes them. Run several next to `run_syslog --store-only` or "
        "server processes (PostgreSQL and Redis: the raw logs are claimed with SKIP LOCKED "
        "and the detection state is shared in Redis, so a burst split between workers is "
        "detected once). Raw logs a stopped worker left mid-stage are taken over once "
        "RAW_LOG_RESUME_AFTER seconds have passed without progress. Ctrl-C or SIGTERM "
        "stops it after the raw log in hand."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--poll",
            type=float,
            default=0.2,
            help="Seconds to wait when there is nothing to process (default 0.2).",
        )
        parser.add_argument(
            "--once",
            action="store_true",
            help="Process what is waiting, then exit.",
        )

    def handle(self, *args, poll, once, **options):
        if not 0 < poll <= 60:
            raise CommandError("--poll must be between 0 and 60 seconds.")
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        where = "shared in Redis" if uses_shared_state() else "in this process only"
        self.stdout.write(f"Processing stored raw logs (detection state {where}).")
        self.stdout.flush()
        resume_every = max(1.0, float(pipeline_setting("RAW_LOG_RESUME_AFTER")))
        next_resume = 0.0 if pipeline_setting("RESUME_RAW_LOGS") else float("inf")
        processed = 0
        while not stop.is_set():
            try:
                raw_log_id = process_next_raw_log()
                if raw_log_id is None and time.monotonic() >= next_resume:
                    # The lease: logs mid-stage without progress for RAW_LOG_RESUME_AFTER
                    # seconds belong to a worker that stopped; take them over.
                    next_resume = time.monotonic() + resume_every
                    raw_log_id = (resume_interrupted() or [None])[-1]
            except Exception:
                self.stderr.write("processing failed; trying again")
                import logging

                logging.getLogger(__name__).exception("processing raw logs failed")
                close_old_connections()
                stop.wait(max(poll, 1.0))
                continue
            if raw_log_id is not None:
                processed += 1
                if options["verbosity"] >= 2:
                    self.stdout.write(f"Processed raw log {raw_log_id}.")
                    self.stdout.flush()
                continue
            if once:
                break
            close_old_connections()
            stop.wait(poll)
        self.stdout.write(f"Stopped after {processed} raw logs.")
