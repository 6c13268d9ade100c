"""manage.py healthcheck [--json] [--timeout S]: the checks of /healthz, on the console."""

import json

from django.core.management.base import BaseCommand, CommandError

from threatlens.monitoring.checks import check_now
from threatlens.monitoring.events import health_check_data
from threatlens.monitoring.health import CRITICAL


class Command(BaseCommand):
    help = (
        "Check the database, the cache and the channel layer now and print each "
        "component's status. Exits 1 when a component is down (critical), 0 otherwise "
        "(a slow component is a warning)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print the result as JSON."
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=5.0,
            help="Seconds each check may take before it counts as down (default 5).",
        )

    def handle(self, *args, as_json, timeout, **options):
        if timeout <= 0:
            raise CommandError("--timeout must be a positive number of seconds.")
        overall, results = check_now(timeout=timeout)
        if as_json:
            self.stdout.write(_json_report(overall, results))
        else:
            width = max(len(name) for name in results)
            for name, result in results.items():
                elapsed = result.metrics.get("response_time")
                line = f"{name:<{width}}  {result.status:<8}"
                if elapsed is not None:
                    line += f"  {elapsed:>8.1f} ms"
                if result.message:
                    line += f"  {result.message}"
                style = self.style.ERROR if result.status == CRITICAL else self.style.SUCCESS
                self.stdout.write(style(line) if result.status != "warning" else line)
            self.stdout.write(f"overall: {overall}")
        down = [name for name, result in results.items() if result.status == CRITICAL]
        if down:
            raise CommandError(f"Down: {', '.join(down)}.", returncode=1)


def _json_report(overall, results):
    # The same report as GET /healthz.
    payload = health_check_data(results)
    report = {"status": overall, "components": payload["components"]}
    return json.dumps({**report, "timestamp": payload["timestamp"]}, indent=2)
