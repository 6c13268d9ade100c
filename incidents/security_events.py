"""The shapes of security events and raw logs, shared by REST and the events.

`SecurityEventSerializer` defines the `security_event` data (threatlens-ws.md: event_id,
severity, category, source, message, timestamp, analysis, recommendations, plus what
identifies the detection) and the items of `GET /api/events/`, so the two never drift.
The event builders (`security_event`, `processing_update`) are in `incidents/events.py`.
"""

from rest_framework import serializers

from incidents.models import RawLog, SecurityEvent
from incidents.serializers import UserSummarySerializer
from realtime.catalogue import RECEIVE_SECURITY

# One rule for the socket and REST: what the pipeline made of logs (security events with
# their raw lines, raw logs and their progress) is for users who may receive security
# events. The `security_event` and `processing_update` types and the /api/events/ and
# /api/logs/ reads all require it, so a viewer gets none of it by either way.
READ_PIPELINE_DATA = RECEIVE_SECURITY

PROCESSING_CATEGORY = "processing"

# The per-stage status a `processing_update` carries next to its `stage`.
STARTED = "started"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"


class SecurityEventSerializer(serializers.ModelSerializer):
    """A security event as `security_event` carries it and as `GET /api/events/` lists it."""

    raw_log_id = serializers.SerializerMethodField()
    alert_id = serializers.IntegerField(read_only=True, allow_null=True)
    blocked_by_incident = serializers.SerializerMethodField(
        help_text="For a DNS query of a domain an incident blocked: {id, reference, "
        "rpz_rule_id} of that incident; else null."
    )

    class Meta:
        model = SecurityEvent
        fields = [
            "event_id",
            "severity",
            "category",
            "source",
            "message",
            "timestamp",
            "analysis",
            "recommendations",
            "rule_id",
            "correlation_key",
            "src_ip",
            "user",
            "raw_log_id",
            "alert_id",
            "blocked_by_incident",
            "created_at",
        ]
        read_only_fields = fields

    def get_blocked_by_incident(self, event) -> dict | None:
        return blocked_by_incident(event)

    def get_raw_log_id(self, event) -> str | None:
        return str(event.raw_log_id) if event.raw_log_id is not None else None


class SecurityEventDetailSerializer(SecurityEventSerializer):
    """`GET /api/events/<event_id>/`: the list item plus the line and the rule's details."""

    class Meta(SecurityEventSerializer.Meta):
        fields = [*SecurityEventSerializer.Meta.fields, "raw_line", "details"]
        read_only_fields = fields


def security_event_payload(event):
    """The `security_event` data of a stored event."""
    return dict(SecurityEventSerializer(event).data)


def blocked_by_incident(event):
    """The incident whose RPZ rule listed the domain of this DNS query event (set by
    `incidents.block_hits`), or None."""
    listing = (event.details or {}).get("listing") if isinstance(event.details, dict) else None
    incident = listing.get("incident") if isinstance(listing, dict) else None
    return dict(incident) if isinstance(incident, dict) else None


class RawLogSerializer(serializers.ModelSerializer):
    """A raw log's processing status (`GET /api/logs/<id>/`, the reply to an upload)."""

    id = serializers.SerializerMethodField()
    created_by = UserSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = RawLog
        fields = [
            "id",
            "source",
            "file_name",
            "size",
            "status",
            "stage",
            "progress",
            "lines_total",
            "lines_malformed",
            "lines_unknown",
            "events_created",
            "alerts_raised",
            "error",
            "received_at",
            "started_at",
            "finished_at",
            "processing_time",
            "created_by",
        ]
        read_only_fields = fields

    def get_id(self, raw_log) -> str:
        # A string, like `raw_log_id` in processing_update.
        return str(raw_log.pk)


def raw_log_payload(raw_log):
    return dict(RawLogSerializer(raw_log).data)
