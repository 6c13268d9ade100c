"""Sigma correlations that replace a built-in rule (`threatlens-replaces: <rule id>`).

The built-in threshold rules Sigma can say (SSH brute force per address and per account,
404 bursts) are shipped as Sigma correlations (incidents/sigma/rules/). Each names the
built-in rule it replaces; while it is loaded, that built-in does not run and the analyzer
runs, in its place, a rule made of both:

    from the Sigma rules    when it fires: the referenced rule's log source and detection,
                            the count (`gte: N`; `gt: N` is N + 1), the timespan and the
                            group-by fields; the ATT&CK tags; the attribution (`sigma`)
    from the built-in       what it raises: its id, category, severity, message,
                            explanation, recommendations and alert category, so the
                            events and alerts are the built-in's whichever runs

The correlation key is the built-in's id and the group values
(`ssh_bruteforce_ip:<address>`, as the built-in's). The rule runs in the analyzer, not in
the Sigma engine, so it is the same detection in every respect: its checks are answered
with the other built-in rules' in one call per chunk (one script call to a shared state in
Redis), in line order, on the same tables (`login_after_bruteforce` sees it fire),
idempotent per line, and replayed when a raw log is resumed.

A replacement is an event_count correlation over one detection rule, with a gte or gt
condition, grouped by plain fields, naming a built-in threshold rule; anything else is
refused (`invalid_replacement`).
"""

import dataclasses
import re

from incidents.pipeline.rules import Threshold
from incidents.sigma.compiler import views
from incidents.sigma.fields import (
    DNS,
    LINUX,
    MAPPED_FIELDS,
    WEBSERVER,
    facets,
    our_field,
    record_values,
)
from incidents.sigma.loading import REPLACES, Refused

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Values a Sigma rule sees that are derived from a line's fields (`fields.record_values`),
# not fields of it: the analyzer groups by the line's own fields.
_DERIVED = frozenset({"uri_query", "uri_extension", "http_host", "category", "action"})


def replaceable_rules():
    """{id: rule spec} of the built-in rules a Sigma correlation may replace: the shipped
    threshold rules (`incidents.pipeline.rules_data`)."""
    from incidents.pipeline.rules_data import RULES

    return {spec["id"]: spec for spec in RULES if spec.get("threshold")}


def check_replacement(replaces, kind, operator, references, aliases, group_by):
    """Raise Refused unless a correlation of this shape can replace built-in `replaces`."""

    def refuse(problem):
        raise Refused("invalid_replacement", f"{REPLACES}: {problem}")

    if not isinstance(replaces, str) or replaces not in replaceable_rules():
        known = ", ".join(sorted(replaceable_rules()))
        refuse(f"{replaces!r} is not a built-in threshold rule ({known})")
    if kind != "event_count" or operator not in ("gte", "gt"):
        refuse("only an event_count correlation with a gte or gt condition replaces a rule")
    if len(references) != 1 or aliases:
        refuse("the correlation counts one detection rule, without aliases")
    if not group_by:
        refuse("the correlation needs a group-by (it makes the correlation key)")
    for name in group_by:
        if not _NAME.match(name) and name not in MAPPED_FIELDS:
            refuse(f"group-by {name!r} is not a plain field name")
        if {our_field(kind, name) for kind in (WEBSERVER, DNS, LINUX)} & _DERIVED:
            refuse(f"group-by {name!r} is derived from the line, not one of its fields")


def replacement_rule(builtin, correlation, member, sigma):
    """The analyzer rule that runs in place of `builtin` (a compiled built-in `Rule`):
    `correlation` (a ParsedRule with `replaces`) counting `member` (its detection rule);
    `sigma` is the attribution the drafts carry."""
    spec = correlation.correlation
    count = max(1, int(spec.count) + (1 if spec.operator == "gt" else 0))
    group_by = tuple(our_field(member.source_kind, name) for name in spec.group_by)
    return dataclasses.replace(
        builtin,
        matcher=line_matcher(member),
        threshold=Threshold(count=count, window=int(spec.timespan), group_by=group_by),
        cooldown=0,
        correlation_key=":".join([builtin.id, *("{" + name + "}" for name in group_by)]),
        categories=None,
        actions=None,
        formats=None,
        attack=correlation.attack,
        sigma=sigma,
    )


def line_matcher(member):
    """A predicate over a parsed line: `member`'s log source and detection."""
    category = member.logsource.get("category")
    product = member.logsource.get("product")
    service = member.logsource.get("service")
    matcher = member.matcher

    def matches(parsed):
        categories, products, services = facets(parsed)
        if (
            (category is not None and category not in categories)
            or (product is not None and product not in products)
            or (service is not None and service not in services)
        ):
            return False
        return bool(matcher(*views(record_values(parsed), parsed.raw)))

    return matches
