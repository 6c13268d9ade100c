"""manage.py sync_sigma_rules [DIRECTORY]: load the Sigma rules of a folder (default
SIGMA_RULES_DIR) into the database; every server process picks them up within
SIGMA_RELOAD_SECONDS. See docs/sigma.md."""

from django.core.management.base import BaseCommand, CommandError

from incidents.exceptions import IncidentsError
from incidents.sigma.models import SigmaRule
from incidents.sigma.services import sync_directory
from threatlens.audit.context import audit_context


class Command(BaseCommand):
    help = "Load the Sigma rules (.yml) of a directory (default: SIGMA_RULES_DIR)."

    def add_arguments(self, parser):
        parser.add_argument("directory", nargs="?", help="folder of .yml rules")
        parser.add_argument(
            "--show-refused", action="store_true", help="list each refused rule and why"
        )

    def handle(self, *args, directory=None, show_refused=False, **options):
        with audit_context(source="manage.py sync_sigma_rules"):
            try:
                counts = sync_directory(directory)
            except IncidentsError as exc:
                raise CommandError(exc.message) from exc
        self.stdout.write(", ".join(f"{name} {count}" for name, count in counts.items()))
        if show_refused:
            for rule in SigmaRule.objects.exclude(refusal_code="").order_by("path"):
                self.stdout.write(f"  {rule.path or rule.sigma_id}: {rule.refusal_code}: "
                                  f"{rule.refusal_reason}")  # fmt: skip
