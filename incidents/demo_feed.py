"""The demo threat feeds that make a sample replay show `threat_detected`.

`seed_demo_feeds()` imports, through the DNS app's own `dns.feeds.import_feed` (which
audits and publishes `threat_feed_updated` / `rpz_updated`), one feed per category of
`SAMPLE_THREAT_DOMAINS`: "ThreatLens demo feed (phishing)" from
`pipeline/samples/demo-feed-phishing.txt`, and the same for malware. Idempotent: a second
run finds the rules in place.
"""

from dataclasses import dataclass

from incidents.pipeline.samples import SAMPLE_THREAT_DOMAINS, SAMPLES_DIR
from incidents.threat_intel import dns_available


def demo_feeds():
    """{feed name: (category, file)} of the demo feeds."""
    categories = sorted(set(SAMPLE_THREAT_DOMAINS.values()))
    return {
        f"ThreatLens demo feed ({category})": (category, SAMPLES_DIR / f"demo-feed-{category}.txt")
        for category in categories
    }


@dataclass
class SeedResult:
    available: bool
    message: str
    added: int = 0


def seed_demo_feeds():
    """Import the demo feeds. Returns a `SeedResult` whose message says what happened,
    including why nothing could be done."""
    if not dns_available():
        return SeedResult(
            False, "The DNS app is not installed: no threat feed, so no threat_detected."
        )
    from dns.feeds import import_feed
    from dns.models import ThreatFeed

    added = listed = 0
    for name, (category, path) in demo_feeds().items():
        summary = import_feed(
            None,
            name,
            path.read_text(encoding="utf-8"),
            fmt=ThreatFeed.Format.DOMAINS,
            action="nxdomain",
            category=category,
            file_path=str(path),
        )
        added += summary["added"]
        listed += summary["entries"]
    inactive = list(
        ThreatFeed.objects.filter(name__in=demo_feeds(), is_active=False).values_list(
            "name", flat=True
        )
    )
    message = f"Demo threat feeds: {added} domains added, {listed} listed."
    if inactive:
        message += f" Inactive (activate them for threat_detected): {', '.join(inactive)}."
    return SeedResult(True, message, added)
