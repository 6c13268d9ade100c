"""Threat feeds: reading domain lists and hosts files, and turning them into RPZ rules."""

import ipaddress
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from dns import announce, services, validation
from dns.events import changes_between
from dns.models import RpzRule, ThreatFeed

# Names a hosts file maps for the machine itself, never threats.
HOSTS_FILE_NOISE = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "local",
        "broadcasthost",
        "ip6-localhost",
        "ip6-loopback",
        "ip6-localnet",
        "ip6-mcastprefix",
        "ip6-allnodes",
        "ip6-allrouters",
        "ip6-allhosts",
        "0.0.0.0",
    }
)
MAX_REPORTED_PROBLEMS = 20


@dataclass
class ParsedFeed:
    domains: set = field(default_factory=set)
    problems: list = field(default_factory=list)  # (line, message)
    skipped: int = 0


def parse_feed(text, fmt):
    """Domains of a feed. `domains`: one per line (`*.` prefix allowed); `hosts`:
    `<address> <name> [<name>...]`. `#` starts a comment (also `!` and `;` at the start
    of a line, as adblock-style lists write them). Lines that hold no valid domain are
    counted as problems with their line numbers."""
    if fmt not in ThreatFeed.Format.values:
        raise ValidationError(
            {"format": [f"{fmt!r} is not one of {', '.join(ThreatFeed.Format.values)}."]}
        )
    parsed = ParsedFeed()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line or line[0] in "!;":
            continue
        words = line.split()
        if fmt == ThreatFeed.Format.HOSTS:
            try:
                ipaddress.ip_address(words[0])
            except ValueError:
                _problem(parsed, lineno, f"{words[0]!r} is not an address (hosts file format)")
                continue
            names = [word for word in words[1:] if word.lower() not in HOSTS_FILE_NOISE]
            if len(words) < 2:
                _problem(parsed, lineno, "an address without a name")
            parsed.skipped += len(words) - 1 - len(names)
        else:
            if len(words) != 1:
                _problem(parsed, lineno, "one domain per line")
                continue
            names = words
        for name in names:
            name = name.lower()
            if name.startswith("*."):
                name = name[2:]  # every rule covers its subdomains already
            try:
                parsed.domains.add(validation.normalize_zone_name(name, field="domain"))
            except ValidationError as exc:
                _problem(parsed, lineno, exc.messages[0])
    return parsed


def _problem(parsed, lineno, message):
    parsed.problems.append((lineno, message))


def import_feed(
    actor,
    name,
    text,
    *,
    fmt=None,
    action=None,
    category=None,
    file_path="",
    url="",
    strict=False,
    request=None,
):
    """Replace the RPZ rules of feed `name` (created if new) by the domains in `text`.

    One transaction: rules for new domains are added, rules for domains no longer listed
    are removed, and the feed's count and time are updated; then one `threat_feed_updated`
    and one `rpz_updated` go out. With `strict`, any bad line refuses the whole import.
    Returns a summary dict.
    """
    if actor is not None and not (
        actor.has_perm("dns.change_threatfeed") and actor.has_perm("dns.add_rpzrule")
    ):
        raise PermissionDenied("You may not import threat feeds.")
    with transaction.atomic():
        feed = ThreatFeed.objects.select_for_update().filter(name=name).first()
        created = feed is None
        before = {} if created else {key: getattr(feed, key) for key in ThreatFeed.EDITABLE_FIELDS}
        if created:
            feed = ThreatFeed(name=name)
        for key, value in (
            ("format", fmt),
            ("action", action),
            ("category", category),
            ("file_path", file_path),
            ("url", url),
        ):
            if value:
                setattr(feed, key, value)
        feed.full_clean(exclude=["last_update"])
        parsed = parse_feed(text, feed.format)
        if strict and parsed.problems:
            raise ValidationError(
                {
                    "file": [
                        f"line {line}: {message}"
                        for line, message in parsed.problems[:MAX_REPORTED_PROBLEMS]
                    ]
                }
            )
        if not parsed.domains:
            raise ValidationError({"file": ["The feed lists no valid domain; nothing changed."]})
        with services.writing():
            feed.save()
        current = dict(feed.rules.values_list("domain", "id"))
        to_add = sorted(parsed.domains - current.keys())
        to_remove = [current[domain] for domain in current.keys() - parsed.domains]
        with services.writing():
            RpzRule.objects.bulk_create(
                [
                    RpzRule(
                        domain=domain,
                        action=feed.action,
                        category=feed.category,
                        source=feed.name,
                        feed=feed,
                    )
                    for domain in to_add
                ],
                batch_size=1000,
            )
            for start in range(0, len(to_remove), 1000):
                RpzRule.objects.filter(pk__in=to_remove[start : start + 1000]).delete()
            # A changed feed action or category applies to the rules it already had.
            feed.rules.exclude(action=feed.action, category=feed.category).update(
                action=feed.action, category=feed.category
            )
        feed.entries_count = len(parsed.domains)
        feed.last_update = timezone.now()
        feed.last_error = ""
        with services.writing():
            feed.save(update_fields=["entries_count", "last_update", "last_error", "updated_at"])
        after = {key: getattr(feed, key) for key in ThreatFeed.EDITABLE_FIELDS}
        announce.feed_changed(
            feed,
            "created" if created else "updated",
            changes_between(before, after),
            actor=actor,
            request=request,
            added=len(to_add),
            removed=len(to_remove),
        )
        if to_add or to_remove:
            announce.rpz_rules_replaced(
                feed, added=len(to_add), removed=len(to_remove), actor=actor
            )
    return {
        "feed": feed.name,
        "feed_id": feed.pk,
        "created": created,
        "entries": len(parsed.domains),
        "added": len(to_add),
        "removed": len(to_remove),
        "skipped": parsed.skipped,
        "problems": parsed.problems[:MAX_REPORTED_PROBLEMS],
        "problem_count": len(parsed.problems),
    }
