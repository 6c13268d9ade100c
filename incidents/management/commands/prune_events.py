"""manage.py prune_events [--older-than 7d] [--dry-run]"""

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from incidents.models import FINISHED_RAW_LOG_STATUSES, RawLog, SecurityEvent
from realtime.models import Event
from threatlens.env import parse_duration

# Rows deleted per transaction: a long prune never holds the tables for long.
BATCH = 5000


class Command(BaseCommand):
    help = (
        "Delete what is past retention: published events (the replay store), security "
        "events, and raw logs that finished processing. Alerts and incidents are kept."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            default=None,
            metavar="DURATION",
            help="Age to keep, e.g. 90s, 15m, 12h, 7d (default: REALTIME_EVENT_RETENTION).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would go; delete nothing."
        )

    def handle(self, *args, older_than, dry_run, **options):
        if older_than is None:
            seconds = settings.REALTIME.get("EVENT_RETENTION", 7 * 86400)
        else:
            seconds = parse_duration(older_than)
            if seconds is None or seconds <= 0:
                raise CommandError(
                    f"--older-than {older_than!r} is not a duration: use a number of seconds "
                    "or a number with s, m, h or d (90s, 15m, 12h, 7d)."
                )
        cutoff = timezone.now() - timedelta(seconds=seconds)
        querysets = {
            "events": Event.objects.filter(created_at__lt=cutoff),
            "security events": SecurityEvent.objects.filter(created_at__lt=cutoff),
            "raw logs": RawLog.objects.filter(
                received_at__lt=cutoff, status__in=FINISHED_RAW_LOG_STATUSES
            ),
        }
        counts = {
            name: (queryset.count() if dry_run else _delete_in_batches(queryset))
            for name, queryset in querysets.items()
        }
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            f"{verb} "
            + ", ".join(f"{count} {name}" for name, count in counts.items())
            + f" older than {cutoff:%Y-%m-%d %H:%M:%S %Z}."
        )
        window = settings.REALTIME.get("REPLAY_WINDOW", 3600)
        if seconds < window:
            self.stderr.write(
                f"Note: {seconds:g} s is shorter than the replay window ({window:g} s): clients "
                "reconnecting now may be told to reload instead of being sent what they missed."
            )


def _delete_in_batches(queryset):
    total = 0
    while True:
        ids = list(queryset.order_by().values_list("pk", flat=True)[:BATCH])
        if not ids:
            return total
        with transaction.atomic():
            queryset.model.objects.filter(pk__in=ids).delete()
        total += len(ids)
