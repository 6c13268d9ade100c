"""Event types of detection and incident response: each declared with its payload.

One place per type: the declaration, the `TypedDict` (or REST serializer) its data
follows, and the builder that makes the data. Alerts and incidents are built with the
serializers REST answers with (`incidents/serializers.py`), so socket and REST clients
see one shape. `tests/realtime/test_event_schemas.py` checks every builder against its
schema and the protocol documents.
"""

from typing import Any, NotRequired, TypedDict

from rest_framework import serializers

from incidents.pipeline.alert_input import severity_label
from incidents.pipeline.analyzer import SecurityEventDraft
from incidents.pipeline.rules import ALERT_CATEGORIES
from incidents.security_events import (
    PROCESSING_CATEGORY,
    READ_PIPELINE_DATA,
    blocked_by_incident,
)
from incidents.serializers import (
    AlertSerializer,
    IncidentSerializer,
    alert_payload,
    incident_payload,
)
from realtime import catalogue
from realtime.catalogue import RECEIVE_SECURITY, Audience, Family

VIEW_ALL_INCIDENTS = "incidents.view_all_incidents"

_DATETIME = serializers.DateTimeField()


def _datetime(value):
    # DRF's own conversion (time zone, ISO 8601, "Z"), from one field made once.
    return None if value is None else _DATETIME.to_representation(value)


# --- security_event ---------------------------------------------------------------------------


class SecurityEventData(TypedDict):
    """threatlens-ws.md "Security Event", plus what identifies the detection; the same
    fields as `SecurityEventSerializer` (GET /api/events/)."""

    event_id: str
    severity: int
    category: str
    source: str
    message: str
    timestamp: str | None
    analysis: dict
    recommendations: list
    rule_id: str
    correlation_key: str
    src_ip: str | None
    user: str
    raw_log_id: str | None
    alert_id: int | None
    # For a DNS query of a domain an incident blocked: {id, reference, rpz_rule_id}.
    blocked_by_incident: dict | None
    created_at: str | None


def security_event_data(event) -> SecurityEventData:
    """The `security_event` data of a stored `SecurityEvent`, without building a
    serializer: what ingest publishes for every event of a batch. The test suite holds it
    equal to `SecurityEventSerializer` (tests/ingest/test_batches.py)."""
    return {
        "event_id": event.event_id,
        "severity": event.severity,
        "category": event.category,
        "source": event.source,
        "message": event.message,
        "timestamp": _datetime(event.timestamp),
        "analysis": event.analysis,
        "recommendations": event.recommendations,
        "rule_id": event.rule_id,
        "correlation_key": event.correlation_key,
        "src_ip": None if event.src_ip is None else str(event.src_ip),
        "user": event.user,
        "raw_log_id": str(event.raw_log_id) if event.raw_log_id is not None else None,
        "alert_id": event.alert_id,
        "blocked_by_incident": blocked_by_incident(event),
        "created_at": _datetime(event.created_at),
    }


catalogue.declare(
    "security_event",
    family=Family.THREATLENS,
    priority=5,
    permission=READ_PIPELINE_DATA,
    description="A security event from the log pipeline; priority = severity.",
    builder=security_event_data,
    schema=SecurityEventData,
)


# --- processing_update ------------------------------------------------------------------------


class ProcessingUpdateData(TypedDict):
    """threatlens-ws.md "Processing Update", `source`/`category` for the filters, the line
    counters, and `error` when the log failed."""

    raw_log_id: str
    stage: str
    status: str  # started | in_progress | completed | failed
    progress: float  # 0..1
    events_created: int
    processing_time: float  # seconds
    source: str
    category: str
    lines_total: int
    lines_malformed: int
    alerts_raised: int
    error: NotRequired[str]


def processing_update_data(raw_log, *, status) -> ProcessingUpdateData:
    """The `processing_update` data for `raw_log` at its current stage."""
    from incidents.models import RawLogStatus

    data: ProcessingUpdateData = {
        "raw_log_id": str(raw_log.pk),
        "stage": raw_log.stage,
        "status": status,
        "progress": round(min(1.0, max(0.0, raw_log.progress)), 4),
        "events_created": raw_log.events_created,
        "processing_time": round(raw_log.processing_time or 0.0, 3),
        "source": raw_log.source,
        "category": PROCESSING_CATEGORY,
        "lines_total": raw_log.lines_total,
        "lines_malformed": raw_log.lines_malformed,
        "alerts_raised": raw_log.alerts_raised,
    }
    if raw_log.status == RawLogStatus.FAILED:
        data["error"] = raw_log.error
    return data


catalogue.declare(
    "processing_update",
    family=Family.THREATLENS,
    priority=5,
    permission=READ_PIPELINE_DATA,
    description="A raw log's progress through the pipeline stages.",
    builder=processing_update_data,
    schema=ProcessingUpdateData,
)


# --- new_alert, alert_updated, incident_created, incident_updated -----------------------------
# The REST serializers are their schema; `incidents/broadcast.py` publishes them from the
# committed rows.


def alert_data(alert) -> dict:
    """`new_alert` / `alert_updated`: the alert as REST answers it."""
    return alert_payload(alert)


def incident_data(incident) -> dict:
    """`incident_created` / `incident_updated`: the incident as REST answers it."""
    return incident_payload(incident)


catalogue.declare(
    "new_alert",
    family=Family.INCIDENTS,
    priority=8,
    permission=RECEIVE_SECURITY,
    description="An alert was raised.",
    builder=alert_data,
    schema=AlertSerializer,
)
catalogue.declare(
    "alert_updated",
    family=Family.INCIDENTS,
    priority=5,
    permission=RECEIVE_SECURITY,
    description="An alert changed (owner, status, incident).",
    builder=alert_data,
    schema=AlertSerializer,
)
for name, priority in [("incident_created", 8), ("incident_updated", 5)]:
    catalogue.declare(
        name,
        family=Family.INCIDENTS,
        priority=priority,
        permission=RECEIVE_SECURITY,
        audience=Audience.LISTED,
        see_all_permission=VIEW_ALL_INCIDENTS,
        description="To the incident's owner, its watchers and users who may see all incidents.",
        builder=incident_data,
        schema=IncidentSerializer,
    )


# --- security_alert ---------------------------------------------------------------------------


class SecurityAlertData(TypedDict):
    """SecurityEvent of unified-ws.md, and `source` for the filters."""

    alert_id: str
    severity: str  # low | medium | high | critical
    category: str  # malware | phishing | suspicious | policy_violation
    message: str
    source_ip: NotRequired[str]
    domain: NotRequired[str]
    details: dict
    timestamp: Any  # datetime; encoded by the publisher
    source: str


def alert_category(draft: SecurityEventDraft) -> str:
    """The unified-ws.md category of a draft: the listing's own category when a feed or
    RPZ rule listed the domain as one of malware, phishing, suspicious or
    policy_violation (a phishing feed makes a phishing alert), else the rule's."""
    listed = (draft.details.get("listing") or {}).get("category")
    if listed in ALERT_CATEGORIES:
        return listed
    return draft.alert_category


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


catalogue.declare(
    "security_alert",
    family=Family.SECURITY,
    priority=10,
    permission=RECEIVE_SECURITY,
    description="An alert raised by detection (SecurityEvent, unified-ws.md).",
    builder=security_alert_data,
    schema=SecurityAlertData,
)


# --- threat_detected --------------------------------------------------------------------------


class ThreatDetectedData(TypedDict):
    domain: str
    client_ip: str
    query_type: str
    rule: str
    feed: str
    action: NotRequired[str]
    severity: str
    timestamp: Any
    category: str
    source: str
    # When the RPZ rule was made by an incident's block (incidents.block_hits):
    incident_id: NotRequired[int]
    incident_reference: NotRequired[str]


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


catalogue.declare(
    "threat_detected",
    family=Family.SECURITY,
    priority=9,
    permission=RECEIVE_SECURITY,
    description="A DNS query for a domain listed by an RPZ rule or threat feed.",
    builder=threat_detected_data,
    schema=ThreatDetectedData,
)
