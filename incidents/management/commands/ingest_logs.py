"""manage.py ingest_logs FILE... [--source NAME]"""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from incidents.exceptions import IncidentsError
from incidents.ingest import receive_log_file, receive_raw_log
from incidents.management.notes import delivery_note, summary
from incidents.models import RawLogStatus
from incidents.processing import process_raw_log
from threatlens.audit.context import audit_context


class Command(BaseCommand):
    help = (
        "Feed log files through the detection pipeline now: each file becomes a raw log, "
        "parsed and analysed, its security events and alerts published. Files ending in "
        ".gz are decompressed; '-' reads standard input. Exits 1 when a log fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE", help="Log files, or '-'.")
        parser.add_argument(
            "--source",
            help="Source name of the raw logs (default: each file's name; 'stdin' for '-'). "
            "It also picks the parser tried first: auth.log, nginx, bind, json...",
        )

    def handle(self, *args, files, source, **options):
        problems = []
        for name in files:
            if name == "-":
                continue
            path = Path(name).expanduser()
            if not path.is_file():
                problems.append(f"{name}: no such file")
        if problems:
            raise CommandError("Nothing was ingested. " + "; ".join(problems))
        if files.count("-") > 1:
            raise CommandError("Standard input ('-') can be read once.")

        failed = 0
        with audit_context(source="manage.py ingest_logs"):
            for name in files:
                try:
                    if name == "-":
                        raw_log = receive_raw_log(
                            source=source or "stdin", content=sys.stdin.read(), actor=None
                        )
                    else:
                        raw_log = receive_log_file(name, source=source)
                except IncidentsError as exc:
                    self.stderr.write(f"{name}: {exc.message}")
                    failed += 1
                    continue
                raw_log = process_raw_log(raw_log.pk)
                line = summary(raw_log)
                if raw_log.status == RawLogStatus.FAILED:
                    failed += 1
                    self.stderr.write(self.style.ERROR(line))
                else:
                    self.stdout.write(self.style.SUCCESS(line))
        self.stdout.write(delivery_note())
        if failed:
            raise CommandError(f"{failed} of {len(files)} logs failed.")
