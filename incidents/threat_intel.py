"""Is this domain listed? The analyzer's `domain_lookup`, answered by the DNS app's data.

A domain counts as listed when an active RPZ rule names it, or names a parent of it with
`include_subdomains`, and the rule is manual or comes from an active threat feed (threat
feed entries are stored as RPZ rules of that feed: see `dns.models`). The answer names
the feed (or "RPZ" for a manual rule), the rule's domain, its action and category.

The DNS app is optional to the pipeline: `domain_lookup()` returns None when it is not
installed, and the analyzer's `listed` rules then never fire.
"""

import logging

from django.apps import apps

from incidents.pipeline.analyzer import parent_domains

logger = logging.getLogger(__name__)

# Answers kept per lookup object (one per processed raw log): a BIND log asks for the same
# few hundred names again and again.
MEMO_LIMIT = 10_000


def dns_available():
    """True when the `dns` app (RPZ rules, threat feeds) is installed."""
    return apps.is_installed("dns")


def domain_lookup():
    """A fresh `ListedDomains` over the DNS app's rules, or None without the DNS app."""
    if not dns_available():
        return None
    return ListedDomains()


class ListedDomains:
    """`lookup(domain) -> dict | None`, memoised for the life of the object.

    Create one per unit of work (a raw log): a rule added meanwhile is seen by the next
    raw log, and no answer outlives that.
    """

    def __init__(self):
        # Imported here: the module stays importable without the DNS app.
        from dns.models import RpzRule

        self._rules = RpzRule.objects
        self._memo = {}

    def __call__(self, domain):
        if not domain or not isinstance(domain, str):
            return None
        name = domain.strip().rstrip(".").lower()
        if not name:
            return None
        if name in self._memo:
            return self._memo[name]
        try:
            answer = self._query(name)
        except Exception:
            # A lookup failure must not stop an ingest: the line is analysed without it.
            logger.exception("threat lookup for %r failed", name)
            return None
        if len(self._memo) >= MEMO_LIMIT:
            self._memo.clear()
        self._memo[name] = answer
        return answer

    def _query(self, name):
        from django.db.models import Q

        candidates = parent_domains(name)
        rules = (
            self._rules.filter(domain__in=candidates, is_active=True)
            .filter(Q(feed__isnull=True) | Q(feed__is_active=True))
            .select_related("feed")
        )
        best = None
        for rule in rules:
            exact = rule.domain == name
            if not exact and not rule.include_subdomains:
                continue
            # Most specific domain first; a manual rule wins over a feed listing it too.
            rank = (candidates.index(rule.domain), rule.feed_id is not None, rule.pk)
            if best is None or rank < best[0]:
                best = (rank, rule)
        if best is None:
            return None
        rule = best[1]
        return {
            "feed": rule.feed.name if rule.feed_id else "RPZ",
            "rule": rule.domain,
            "action": rule.action,
            "category": rule.category,
            "source": rule.source,
            "rule_id": rule.pk,
            "feed_id": rule.feed_id,
        }
