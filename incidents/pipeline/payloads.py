"""Event data built from drafts, for the unified-ws.md families (`security_alert`,
`threat_detected`). The `security_event` data is `SecurityEventDraft.to_event_data()`.

These take plain values (an alert id, a draft) so the services that store alerts can use
them with their own serializers' output without this module knowing any model.
"""

from typing import TypedDict

from incidents.pipeline.analyzer import SecurityEventDraft
from incidents.pipeline.parsers.base import is_ip
from incidents.pipeline.rules import ALERT_CATEGORIES


class SecurityAlertData(TypedDict, total=False):
    """SecurityEvent of unified-ws.md."""

    alert_id: str
    severity: str  # low | medium | high | critical
    category: str  # malware | phishing | suspicious | policy_violation
    message: str
    source_ip: str
    domain: str
    details: dict
    timestamp: object  # datetime; encoded by the publisher
    source: str


class ThreatDetectedData(TypedDict, total=False):
    domain: str
    client_ip: str
    query_type: str
    rule: str
    feed: str
    action: str
    severity: str
    timestamp: object
    category: str
    source: str
    # When the RPZ rule was made by an incident's block (incidents.block_hits):
    incident_id: int
    incident_reference: str


def alert_input(draft: SecurityEventDraft, *, source="pipeline", external_id=None) -> dict:
    """The body `incidents.services.ingest_alert` takes (AlertIngestSerializer's fields)
    for an alert raised from `draft`."""
    fields = draft.details.get("fields", {})
    description = draft.analysis.get("explanation", "")
    if draft.recommendations:
        description += "\n\nRecommendations:\n" + "\n".join(f"- {r}" for r in draft.recommendations)
    data = {
        "title": draft.message[:300],
        "description": description,
        "severity": severity_label(draft.severity),
        "category": draft.category[:64],
        "source": source,
        "source_system": draft.source[:128],
        "rule_id": draft.rule_id,
        "rule_name": draft.details.get("rule_name", "")[:300],
        "source_ip": draft.src_ip,
        "affected_host": str(fields.get("host", ""))[:255],
        "affected_user": (draft.user or "")[:255],
        "confidence": draft.analysis.get("confidence"),
        "risk_score": draft.severity * 10,
        "correlation_key": draft.correlation_key,
        "details": {
            "analysis": dict(draft.analysis),
            "recommendations": list(draft.recommendations),
            "raw_line": draft.raw_line,
            "alert_category": draft.alert_category,
            **draft.details,
        },
        "detected_at": draft.timestamp,
    }
    if isinstance(fields.get("port"), int) and 0 < fields["port"] < 65536:
        data["source_port"] = fields["port"]
    if is_ip(fields.get("dst")):
        data["destination_ip"] = fields["dst"]
    if external_id:
        data["external_id"] = str(external_id)[:255]
    return data


def severity_label(severity):
    """1-10 -> the alert labels of DESIGN.md (9-10 critical, 7-8 high, 4-6 medium, 1-3 low)."""
    if severity >= 9:
        return "critical"
    if severity >= 7:
        return "high"
    if severity >= 4:
        return "medium"
    return "low"


def security_alert_data(draft: SecurityEventDraft, *, alert_id) -> SecurityAlertData:
    """The `security_alert` data for an alert raised from `draft`."""
    data: SecurityAlertData = {
        "alert_id": str(alert_id),
        "severity": severity_label(draft.severity),
        "category": alert_category(draft),
        "message": draft.message,
        "details": {
            "rule_id": draft.rule_id,
            "correlation_key": draft.correlation_key,
            "event_category": draft.category,
            "severity_score": draft.severity,
            "analysis": dict(draft.analysis),
            **({"user": draft.user} if draft.user else {}),
            **{key: value for key, value in draft.details.items() if key != "listing"},
        },
        "timestamp": draft.timestamp,
        "source": draft.source,
    }
    if draft.src_ip:
        data["source_ip"] = draft.src_ip
    domain = draft.details.get("fields", {}).get("domain")
    if domain:
        data["domain"] = domain
    return data


def alert_category(draft: SecurityEventDraft) -> str:
    """The unified-ws.md category of a draft: the listing's own category when a feed or
    RPZ rule listed the domain as one of malware, phishing, suspicious or
    policy_violation (a phishing feed makes a phishing alert), else the rule's."""
    listed = (draft.details.get("listing") or {}).get("category")
    if listed in ALERT_CATEGORIES:
        return listed
    return draft.alert_category


def threat_detected_data(draft: SecurityEventDraft) -> ThreatDetectedData | None:
    """The `threat_detected` data for a draft of a `listed` rule (a DNS query for a domain
    a feed or RPZ rule lists); None for other drafts."""
    listing = draft.details.get("listing")
    if not listing:
        return None
    fields = draft.details.get("fields", {})
    data: ThreatDetectedData = {
        "domain": fields.get("domain", ""),
        "client_ip": draft.src_ip or "",
        "query_type": fields.get("qtype", ""),
        "rule": str(listing.get("rule", "")),
        "feed": str(listing.get("feed", "")),
        "severity": severity_label(draft.severity),
        "timestamp": draft.timestamp,
        "category": alert_category(draft),
        "source": draft.source,
    }
    if listing.get("action"):
        data["action"] = str(listing["action"])
    incident = listing.get("incident")
    if incident:
        data["incident_id"] = incident["id"]
        data["incident_reference"] = incident["reference"]
    return data
