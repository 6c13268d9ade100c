"""DNS queries that hit an RPZ rule an incident made: linked to the incident, and shown on it.

An incident blocks a domain with an RPZ rule whose `source` is `incident:<reference>`
(`incidents.response`). A BIND query log line for that domain is matched by the shipped
`dns_threat_feed_match` rule through the analyzer's domain lookup
(`incidents.threat_intel`), whose answer (the draft's `details["listing"]`) carries the
rule's `source`; nothing is looked up here for lines that hit no incident's rule. For the
drafts of one ingest batch that do, `link_and_record` (inside the batch's transaction):

- puts `{"id", "reference", "rpz_rule_id"}` under the listing's `incident` key, so the
  stored security event (`blocked_by_incident` in REST and `security_event`) and the
  `threat_detected` event (`incident_id`, `incident_reference`) name the incident;
- adds one `threat_detected` timeline entry per incident, domain and client in the batch
  (the rule's own cooldown already keeps one client's repeats to one draft per 300 s);
- touches the incidents' `updated_at` and publishes `incident_updated` after the commit,
  to the sockets allowed to see each incident (owner, watchers, see-all), whose page
  reloads its timeline.

One query for the batch's references; an incident deleted or renamed meanwhile is skipped.
"""

from django.utils import timezone

from incidents import broadcast
from incidents.models import Incident, IncidentTimelineEntry, TimelineKind

SOURCE_PREFIX = "incident:"
# Timeline entries one batch may add to one incident: a burst of distinct clients asking for
# a blocked domain is summarised rather than written line by line.
MAX_ENTRIES_PER_INCIDENT = 20


def incident_reference(listing):
    """The reference of the incident that made the listing's RPZ rule, or None."""
    source = listing.get("source") if isinstance(listing, dict) else None
    if not isinstance(source, str) or not source.startswith(SOURCE_PREFIX):
        return None
    if listing.get("feed_id") is not None:  # a feed entry is never an incident's block
        return None
    return source[len(SOURCE_PREFIX) :] or None


def link_and_record(drafts):
    """Link the drafts whose listing an incident's rule made to that incident, and record
    the hits on its timeline. Returns the ids of the incidents hit."""
    hits = []
    for draft in drafts:
        listing = draft.details.get("listing")
        reference = incident_reference(listing)
        if reference:
            hits.append((draft, listing, reference))
    if not hits:
        return set()
    incidents = dict(
        Incident.objects.filter(reference__in={ref for _, _, ref in hits}).values_list(
            "reference", "pk"
        )
    )
    entries, seen, per_incident, skipped = [], set(), {}, {}
    for draft, listing, reference in hits:
        incident_id = incidents.get(reference)
        if incident_id is None:
            continue
        listing["incident"] = {
            "id": incident_id,
            "reference": reference,
            "rpz_rule_id": listing.get("rule_id"),
        }
        domain = draft.details.get("fields", {}).get("domain") or listing.get("rule", "")
        client = draft.src_ip or ""
        key = (incident_id, domain, client)
        if key in seen:
            continue
        seen.add(key)
        if per_incident.get(incident_id, 0) >= MAX_ENTRIES_PER_INCIDENT:
            skipped[incident_id] = skipped.get(incident_id, 0) + 1
            continue
        per_incident[incident_id] = per_incident.get(incident_id, 0) + 1
        entries.append(_entry(incident_id, draft, listing, domain, client))
    for incident_id, count in skipped.items():
        entries.append(
            IncidentTimelineEntry(
                incident_id=incident_id,
                kind=TimelineKind.THREAT_DETECTED,
                field="rpz_rule",
                new_value={"more_queries": count},
                message=f"{count} more clients queried blocked domains in the same batch",
            )
        )
    if not entries:
        return set()
    IncidentTimelineEntry.objects.bulk_create(entries)
    touched = set(per_incident)
    # queryset.update() sends no post_save: the incidents are published explicitly.
    Incident.objects.filter(pk__in=touched).update(updated_at=timezone.now())
    broadcast.incidents_changed(sorted(touched))
    return touched


def _entry(incident_id, draft, listing, domain, client):
    action = listing.get("action") or ""
    qtype = draft.details.get("fields", {}).get("qtype") or ""
    return IncidentTimelineEntry(
        incident_id=incident_id,
        kind=TimelineKind.THREAT_DETECTED,
        field="rpz_rule",
        new_value={
            "rule": listing.get("rule_id"),
            "domain": domain,
            "client_ip": client,
            "query_type": qtype,
            "action": action,
        },
        message=(
            f"{client or 'A client'} queried {domain}"
            + (f" ({qtype})" if qtype else "")
            + f", blocked by RPZ rule #{listing.get('rule_id')}"
            + (f" ({action})" if action else "")
        )[:500],
    )
