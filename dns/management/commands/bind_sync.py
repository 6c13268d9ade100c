"""manage.py bind_sync: write, check and reload BIND's zones now."""

from django.core.management.base import BaseCommand, CommandError

from dns import bind


class Command(BaseCommand):
    help = (
        "Write every active zone and the RPZ to DNS BIND_DIR, check them, and reload BIND "
        "when every check passes (a failed check never reloads). Publishes bind_reload."
    )

    def handle(self, *args, **options):
        if not bind.enabled():
            raise CommandError(
                "The BIND integration is off: set DNS_BIND_ENABLED=true and DNS_BIND_DIR."
            )
        outcome = bind.sync_bind(reason="manage.py bind_sync")
        for error in outcome.errors:
            self.stderr.write(f"{error.get('zone', error['check'])}: {error['output']}")
        if not outcome.success:
            raise CommandError(outcome.message)
        self.stdout.write(self.style.SUCCESS(f"{outcome.message} ({outcome.zones} zones)."))
