"""manage.py monitor_forwarders [--once] [--interval SECONDS]"""

import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from dns import forwarders
from dns.conf import dns_setting


class Command(BaseCommand):
    help = (
        "Resolve the probe name (DNS FORWARDER_PROBE_NAME) through every active forwarder, "
        "store each one's health, and publish health_update and, on a change, "
        "forwarder_status_change. Runs until stopped, or one round with --once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Check once and exit.")
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="Seconds between rounds (default: FORWARDER_CHECK_INTERVAL).",
        )

    def handle(self, *args, **options):
        interval = options["interval"] or dns_setting("FORWARDER_CHECK_INTERVAL")
        while True:
            results = forwarders.check_all()
            for forwarder_id, result in results.items():
                detail = f" ({result.error})" if result.error else ""
                self.stdout.write(f"forwarder {forwarder_id}: {result.status}{detail}")
            if not results:
                self.stdout.write("No active forwarders.")
            if options["once"]:
                return
            time.sleep(interval)
            close_old_connections()  # a long-running loop: drop connections gone stale
