"""manage.py fetch_threat_feeds [--all] [--feed NAME ...]"""

from django.core.management.base import BaseCommand, CommandError

from dns import feed_download
from dns.models import ThreatFeed


class Command(BaseCommand):
    help = (
        "Download the threat feeds that have a URL and whose update interval has passed "
        "(--all: every active one; --feed: these), apply them to the RPZ and publish "
        "threat_feed_updated. The server does this by itself on DNS FEED_CHECK_INTERVAL."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="Ignore the intervals.")
        parser.add_argument("--feed", action="append", default=[], help="A feed by name.")

    def handle(self, *args, **options):
        if options["feed"]:
            chosen = list(ThreatFeed.objects.filter(name__in=options["feed"]).exclude(url=""))
            missing = set(options["feed"]) - {feed.name for feed in chosen}
            if missing:
                raise CommandError(f"No feed with a URL named {', '.join(sorted(missing))}.")
        elif options["all"]:
            chosen = list(ThreatFeed.objects.filter(is_active=True).exclude(url=""))
        else:
            chosen = feed_download.due_feeds()
        failed = 0
        for feed in chosen:
            outcome = feed_download.download_feed(feed)
            failed += outcome.status == "failed"
            counts = (
                f" (+{outcome.added} -{outcome.removed})" if outcome.status == "updated" else ""
            )
            self.stdout.write(f"{feed.name}: {outcome.status}, {outcome.message}{counts}")
        if not chosen:
            self.stdout.write("No feed is due.")
        if failed:
            raise CommandError(f"{failed} feed(s) failed.")
