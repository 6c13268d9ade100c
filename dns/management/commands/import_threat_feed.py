"""manage.py import_threat_feed FILE --name NAME [--format domains|hosts] [--action ...]"""

import sys
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from dns import feeds
from dns.models import RpzRule, ThreatFeed


class Command(BaseCommand):
    help = (
        "Import a threat feed (a plain domain list or a hosts file) into RPZ rules: the "
        "feed's rules become exactly the domains in FILE. Publishes threat_feed_updated "
        "and rpz_updated; live clients of any server process receive them (through the "
        "shared channel layer, or the event table the servers poll)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The feed file ('-' reads standard input).")
        parser.add_argument("--name", required=True, help="Feed name (created if new).")
        parser.add_argument(
            "--format",
            choices=ThreatFeed.Format.values,
            help="domains (one per line) or hosts; default: the feed's, else domains.",
        )
        parser.add_argument(
            "--action",
            choices=[a for a in RpzRule.Action.values if a != RpzRule.Action.REDIRECT],
            help="RPZ action of the feed's rules (default: the feed's, else nxdomain).",
        )
        parser.add_argument(
            "--category",
            choices=RpzRule.Category.values,
            help="Category of the feed's rules (default: malware).",
        )
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Refuse the whole file if any line is not a valid entry.",
        )

    def handle(self, *args, **options):
        path = options["file"]
        try:
            if path == "-":
                text = sys.stdin.read()
                file_path = "stdin"
            else:
                text = Path(path).read_text(encoding="utf-8", errors="replace")
                file_path = str(Path(path).resolve())
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from None
        try:
            summary = feeds.import_feed(
                None,
                options["name"],
                text,
                fmt=options["format"],
                action=options["action"],
                category=options["category"],
                file_path=file_path,
                strict=options["strict"],
            )
        except ValidationError as exc:
            messages = [
                m for ms in getattr(exc, "message_dict", {"": exc.messages}).values() for m in ms
            ]
            raise CommandError("Nothing imported: " + "; ".join(messages)) from None
        for line, message in summary["problems"]:
            self.stderr.write(f"line {line}: {message} (skipped)")
        if summary["problem_count"] > len(summary["problems"]):
            self.stderr.write(f"... {summary['problem_count'] - len(summary['problems'])} more")
        verb = "Created" if summary["created"] else "Updated"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} feed {summary['feed']}: {summary['entries']} domains "
                f"({summary['added']} added, {summary['removed']} removed, "
                f"{summary['problem_count']} bad lines skipped)."
            )
        )
