"""BIND (named) query logs.

Forms accepted, with or without BIND's own `dd-Mon-YYYY HH:MM:SS.mmm` timestamp and
`queries: info:` prefix, or inside syslog as a `named[pid]:` message:

    client @0x7f2a1c0bd8e0 10.0.0.5#53211 (example.com): query: example.com IN A +E(0)K (10.0.0.1)
    client 10.0.0.5#53211 (example.com): view internal: query: example.com IN A +E (10.0.0.1)
    client 10.0.0.5#53211: query: example.com IN A +
    client @0x... 10.0.0.5#53211 (bad.example): rpz QNAME NXDOMAIN rewrite bad.example/A/IN via ...
    client @0x... 10.0.0.5#53211 (x.example): query (cache) 'x.example/A/IN' denied
"""

import re
from datetime import datetime

from incidents.pipeline.parsers.base import (
    DNS,
    ParsedLine,
    aware,
    month_number,
    normalise_address,
    shannon_entropy,
)

_PREFIX = re.compile(
    r"^(?:(?P<day>\d{2})-(?P<mon>[A-Za-z]{3})-(?P<year>\d{4}) "
    r"(?P<hms>\d{2}:\d{2}:\d{2})(?:\.(?P<ms>\d{1,6}))? )?"
    r"(?:(?P<cat>[a-z][a-z-]*): )?(?:(?P<sev>info|notice|warning|error|critical|debug \d+): )?"
)
_CLIENT = re.compile(
    r"^client (?:@0x[0-9a-fA-F]+ )?(?P<ip>[0-9A-Fa-f:.%a-z]+)#(?P<port>\d+)"
    r"(?: \((?P<name>[^)]*)\))?: (?:view (?P<view>[^:]+): )?(?P<rest>.*)$"
)
_QUERY = re.compile(
    r"^query: (?P<qname>\S+) (?P<qclass>\S+) (?P<qtype>\S+) (?P<flags>[-+]\S*)"
    r"(?: \((?P<server>[^)]+)\))?\s*$"
)
_RPZ = re.compile(
    r"^rpz (?P<policy_type>\S+) (?P<policy>\S+) rewrite (?P<qname>[^/\s]+)/(?P<qtype>[^/\s]+)/"
    r"(?P<qclass>\S+) via (?P<via>\S+)"
)
_DENIED = re.compile(
    r"^query \((?P<scope>[^)]+)\) '(?P<qname>[^/]+)/(?P<qtype>[^/]+)/[^']*' denied"
)
_FAILED = re.compile(
    r"^query failed \((?P<rcode>[^)]+)\) for (?P<qname>[^/\s]+)/[^/\s]+/(?P<qtype>\S+)"
)


def parse_query_log(raw, *, tz=None):
    """A BIND query-log line (file form), or None when it is not one."""
    prefix = _PREFIX.match(raw)
    rest = raw[prefix.end() :]
    started = bool(prefix.group("day") or prefix.group("cat"))
    if not rest.startswith("client "):
        if started and prefix.group("cat") in ("queries", "query-errors", "rpz", "security"):
            return ParsedLine(raw=raw, format="bind", malformed=True, error="no client part")
        return None
    timestamp = None
    if prefix.group("day"):
        timestamp = _timestamp(prefix, tz)
        if timestamp is None:
            return ParsedLine(
                raw=raw, format="bind", malformed=True, error="the timestamp is not a real date"
            )
    result = parse_message(rest)
    if result is None:
        return ParsedLine(
            raw=raw, format="bind", timestamp=timestamp, malformed=True,
            error="a client line that is not a query, RPZ rewrite or denial",
        )  # fmt: skip
    category, action, fields = result
    if prefix.group("cat"):
        fields["log_category"] = prefix.group("cat")
    return ParsedLine(
        raw=raw, format="bind", category=category, action=action, timestamp=timestamp,
        fields=fields,
    )  # fmt: skip


def _timestamp(prefix, tz):
    month = month_number(prefix.group("mon"))
    if month is None:
        return None
    hour, minute, second = (int(part) for part in prefix.group("hms").split(":"))
    micro = int((prefix.group("ms") or "0").ljust(6, "0"))
    try:
        moment = datetime(
            int(prefix.group("year")), month, int(prefix.group("day")), hour, minute, second, micro
        )
    except ValueError:
        return None
    return aware(moment, tz)


def parse_message(message):
    """`client ...` text (as BIND writes it, or a syslog `named` MSG) -> (category, action,
    fields), or None."""
    if not message.startswith("client "):
        # Inside syslog with `print-category yes`: "queries: info: client ...".
        message = message[_PREFIX.match(message).end() :]
    client = _CLIENT.match(message)
    if client is None:
        return None
    fields = {
        "service": "named",
        "src_ip": normalise_address(client.group("ip")),
        "port": int(client.group("port")),
    }
    if client.group("view"):
        fields["view"] = client.group("view")
    rest = client.group("rest")
    if query := _QUERY.match(rest):
        fields.update(
            qclass=query.group("qclass"), qtype=query.group("qtype"), flags=query.group("flags")
        )
        if query.group("server"):
            fields["dst"] = normalise_address(query.group("server"))
        fields.update(domain_fields(query.group("qname")))
        return DNS, "query", fields
    if rpz := _RPZ.match(rest):
        fields.update(
            qtype=rpz.group("qtype"), qclass=rpz.group("qclass"), rpz_policy=rpz.group("policy"),
            rpz_type=rpz.group("policy_type"), rpz_via=rpz.group("via"),
        )  # fmt: skip
        fields.update(domain_fields(rpz.group("qname")))
        return DNS, "rpz_rewrite", fields
    if denied := _DENIED.match(rest):
        fields.update(qtype=denied.group("qtype"), scope=denied.group("scope"))
        fields.update(domain_fields(denied.group("qname")))
        return DNS, "query_denied", fields
    if failed := _FAILED.match(rest):
        fields.update(qtype=failed.group("qtype"), rcode=failed.group("rcode"))
        fields.update(domain_fields(failed.group("qname")))
        return DNS, "query_failed", fields
    return None


def domain_fields(qname):
    """The queried name, lower-cased without the trailing dot, with the measures the DNS
    rules use: total length, longest label, and the entropy of that label."""
    domain = qname.rstrip(".").lower()
    labels = [label for label in domain.split(".") if label]
    longest = max(labels, key=len) if labels else ""
    return {
        "domain": domain,
        "domain_length": len(domain),
        "label_count": len(labels),
        "longest_label_length": len(longest),
        "label_entropy": round(shannon_entropy(longest), 3),
    }
