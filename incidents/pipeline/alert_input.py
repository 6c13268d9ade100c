"""The alert a draft raises, as the body `incidents.services.ingest_alert` takes.

Pure Python (no models). The events a draft publishes (`security_alert`,
`threat_detected`) are built in `incidents/events.py`, next to their declarations.
"""

from incidents.pipeline.analyzer import SecurityEventDraft
from incidents.pipeline.parsers.base import is_ip


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
