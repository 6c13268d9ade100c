"""Search and pivot for the analyst console (read only).

`search(user, q)` looks for `q` in alerts, incidents, security events, DNS zones and
records, each restricted to what `user` may see (the same querysets and permissions as the
REST lists). `pivot(user, kind, value)` gathers everything about one IP address, user,
host or domain: counts, first and last seen, security events per hour, alerts, incidents
and DNS queries (the `dns` category events of the BIND query log).
"""

import ipaddress
from datetime import timedelta

from django.db.models import Max, Min, Q
from django.utils import timezone

from dns.models import Record, Zone
from incidents.exceptions import NotFound, ValidationError
from incidents.inputs import parse_id
from incidents.models import Alert, Incident, SecurityEvent
from incidents.security_events import READ_PIPELINE_DATA

VIEW_ALERT = "incidents.view_alert"
VIEW_INCIDENT = "incidents.view_incident"
VIEW_EVENT = "incidents.view_securityevent"
VIEW_ZONE = "dns.view_zone"


def may_read_events(user):
    """Security events (and the DNS queries among them) need what REST and the socket ask:
    the model's view permission and the pipeline-data one (`security_events`), which
    viewers lack."""
    return user.has_perm(VIEW_EVENT) and user.has_perm(READ_PIPELINE_DATA)


PIVOT_KINDS = ("ip", "user", "host", "domain")
SEARCH_LIMIT = 10
PIVOT_LIMIT = 50
MAX_QUERY_LENGTH = 200
HISTOGRAM_HOURS = 24


def _query(q):
    if not isinstance(q, str) or not q.strip():
        raise ValidationError("q is required.", details={"errors": {"q": ["Required."]}})
    q = q.strip()
    if len(q) > MAX_QUERY_LENGTH:
        raise ValidationError(
            f"q may have at most {MAX_QUERY_LENGTH} characters.",
            details={"errors": {"q": ["Too long."]}},
        )
    return q


def _ip(value):
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _number(q):
    text = q.lstrip("#")
    return int(text) if text.isdigit() and len(text) < 10 else None


def search(user, q):
    """{"alerts": [...], "incidents": [...], "events": [...], "zones": [...], "records":
    [...]}, each a list of model instances (newest first, at most `SEARCH_LIMIT`); a kind
    the user may not read is absent."""
    q = _query(q)
    ip, number = _ip(q), _number(q)
    results = {}
    if user.has_perm(VIEW_ALERT):
        match = (
            Q(title__icontains=q)
            | Q(description__icontains=q)
            | Q(affected_host__icontains=q)
            | Q(affected_user__icontains=q)
            | Q(rule_name__icontains=q)
            | Q(category__iexact=q)
        )
        if ip:
            match |= Q(source_ip=ip) | Q(destination_ip=ip)
        if number:
            match |= Q(pk=number)
        results["alerts"] = list(
            Alert.objects.for_payload().filter(match).order_by("-received_at", "-id")[:SEARCH_LIMIT]
        )
    if user.has_perm(VIEW_INCIDENT):
        match = Q(reference__icontains=q) | Q(title__icontains=q) | Q(description__icontains=q)
        if number:
            match |= Q(pk=number)
        results["incidents"] = list(
            Incident.objects.visible_to(user)
            .for_payload()
            .filter(match)
            .order_by("-updated_at", "-id")[:SEARCH_LIMIT]
        )
    if may_read_events(user):
        match = Q(message__icontains=q) | Q(user__iexact=q) | Q(rule_id__iexact=q)
        if ip:
            match |= Q(src_ip=ip)
        results["events"] = list(
            SecurityEvent.objects.filter(match).order_by("-timestamp", "-id")[:SEARCH_LIMIT]
        )
    if user.has_perm(VIEW_ZONE):
        results["zones"] = list(
            Zone.objects.for_user(user)
            .filter(name__icontains=q.rstrip("."))
            .order_by("name")[:SEARCH_LIMIT]
        )
        results["records"] = list(
            Record.objects.for_user(user)
            .select_related("zone")
            .filter(Q(name__icontains=q) | Q(value__icontains=q))
            .order_by("zone__name", "name", "id")[:SEARCH_LIMIT]
        )
    return results


def _matches(kind, value):
    """(events filter, alerts filter) for one pivot value."""
    if kind == "ip":
        ip = _ip(value)
        if ip is None:
            raise ValidationError(
                f"{value!r} is not an IP address.",
                details={"errors": {"value": ["Not an IP address."]}},
            )
        return Q(src_ip=ip), Q(source_ip=ip) | Q(destination_ip=ip)
    if kind == "user":
        return Q(user__iexact=value), Q(affected_user__iexact=value)
    if kind == "host":
        return Q(raw_line__icontains=value), Q(affected_host__iexact=value)
    domain = value.rstrip(".").lower()
    return (
        Q(raw_line__icontains=domain) | Q(message__icontains=domain),
        Q(title__icontains=domain) | Q(description__icontains=domain),
    )


def pivot(user, kind, value, *, now=None):
    """Everything `user` may see about one value (see the module). Kinds: `PIVOT_KINDS`."""
    if kind not in PIVOT_KINDS:
        raise ValidationError(
            f"type must be one of: {', '.join(PIVOT_KINDS)}.",
            details={"errors": {"type": [f"One of: {', '.join(PIVOT_KINDS)}."]}},
        )
    value = _query(value)
    now = now or timezone.now()
    event_match, alert_match = _matches(kind, value)
    result = {
        "type": kind,
        "value": value,
        "counts": {},
        "first_seen": None,
        "last_seen": None,
        "histogram": [],
        "events": [],
        "alerts": [],
        "incidents": [],
        "dns_queries": [],
    }
    seen = []
    if may_read_events(user):
        events = SecurityEvent.objects.filter(event_match)
        span = events.aggregate(first=Min("timestamp"), last=Max("timestamp"))
        seen += [span["first"], span["last"]]
        result["counts"]["events"] = events.count()
        result["events"] = list(events.order_by("-timestamp", "-id")[:PIVOT_LIMIT])
        dns = events.filter(category="dns")
        result["counts"]["dns_queries"] = dns.count()
        result["dns_queries"] = list(dns.order_by("-timestamp", "-id")[:PIVOT_LIMIT])
        start = (now - timedelta(hours=HISTOGRAM_HOURS - 1)).replace(
            minute=0, second=0, microsecond=0
        )
        buckets = [0] * HISTOGRAM_HOURS
        for stamp in events.filter(timestamp__gte=start, timestamp__lte=now).values_list(
            "timestamp", flat=True
        ):
            index = int((stamp - start).total_seconds() // 3600)
            if 0 <= index < HISTOGRAM_HOURS:
                buckets[index] += 1
        result["histogram"] = [
            {"start": start + timedelta(hours=n), "count": count} for n, count in enumerate(buckets)
        ]
    if user.has_perm(VIEW_ALERT):
        alerts = Alert.objects.filter(alert_match)
        span = alerts.aggregate(first=Min("detected_at"), last=Max("last_seen_at"))
        seen += [span["first"], span["last"]]
        result["counts"]["alerts"] = alerts.count()
        result["alerts"] = list(alerts.for_payload().order_by("-received_at", "-id")[:PIVOT_LIMIT])
        if user.has_perm(VIEW_INCIDENT):
            incidents = Incident.objects.visible_to(user).filter(
                pk__in=alerts.filter(incident__isnull=False).values("incident_id")
            )
            result["counts"]["incidents"] = incidents.count()
            result["incidents"] = list(
                incidents.for_payload().order_by("-updated_at", "-id")[:PIVOT_LIMIT]
            )
    seen = [stamp for stamp in seen if stamp is not None]
    if seen:
        result["first_seen"], result["last_seen"] = min(seen), max(seen)
    return result


MAX_OBSERVABLES = 50


def incident_observables(user, incident_id):
    """The IPs, users, hosts and domains of an incident's alerts, each with the number of
    other incidents (that `user` may see) whose alerts show it too:
    `[{"type", "value", "alerts", "other_incidents"}]`, most alerts first."""
    pk = parse_id(incident_id, "incident_id")
    incident = Incident.objects.visible_to(user).filter(pk=pk).first()
    if incident is None:
        raise NotFound(f"Incident {pk} not found.")
    found = {}
    fields = ("source_ip", "destination_ip", "affected_host", "affected_user", "details")
    for alert in incident.alerts.only(*fields):
        domain = alert.details.get("domain") if isinstance(alert.details, dict) else None
        for kind, value in (
            ("ip", alert.source_ip),
            ("ip", alert.destination_ip),
            ("host", alert.affected_host),
            ("user", alert.affected_user),
            ("domain", domain if isinstance(domain, str) else None),
        ):
            if value:
                found[(kind, value)] = found.get((kind, value), 0) + 1
    visible = Incident.objects.visible_to(user).exclude(pk=pk)
    lookups = {
        "ip": lambda v: Q(source_ip=v) | Q(destination_ip=v),
        "host": lambda v: Q(affected_host__iexact=v),
        "user": lambda v: Q(affected_user__iexact=v),
        "domain": lambda v: Q(details__domain=v),
    }
    result = []
    ranked = sorted(found.items(), key=lambda item: (-item[1], item[0]))[:MAX_OBSERVABLES]
    for (kind, value), count in ranked:
        others = visible.filter(
            pk__in=Alert.objects.filter(lookups[kind](value)).values("incident_id")
        ).count()
        result.append({"type": kind, "value": value, "alerts": count, "other_incidents": others})
    return result
