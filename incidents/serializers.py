"""The shapes of alerts and incidents, shared by REST, events and the socket.

`AlertSerializer` and `IncidentSerializer` define the payloads of `new_alert`,
`alert_updated`, `incident_created` and `incident_updated` as well as the REST bodies,
so the two never drift. Querysets that feed them should use `.for_payload()`.
"""

from rest_framework import serializers

from incidents.markup import render_markdown
from incidents.models import (
    Alert,
    Incident,
    IncidentComment,
    IncidentTimelineEntry,
    Severity,
)


class UserSummarySerializer(serializers.Serializer):
    """A user as other objects mention them (owner, author, actor)."""

    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    full_name = serializers.CharField(source="get_full_name", read_only=True)


def user_summary(user):
    return UserSummarySerializer(user).data if user is not None else None


def user_payload(user):
    """The `user` of the socket's `initial_data`: who is connected, and their roles."""
    return {
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "full_name": user.get_full_name(),
        "roles": sorted(group.name for group in user.groups.all()),
        "is_staff": user.is_staff,
    }


class AlertSerializer(serializers.ModelSerializer):
    """An alert as REST answers it and as `new_alert` / `alert_updated` carry it."""

    assigned_analyst = UserSummarySerializer(read_only=True, allow_null=True)
    # The incident frontend counts unassigned alerts and labels the analyst by this id.
    assigned_analyst_id = serializers.IntegerField(read_only=True, allow_null=True)
    incident_reference = serializers.CharField(
        source="incident.reference", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = Alert
        fields = [
            "id",
            "title",
            "description",
            "severity",
            "status",
            "category",
            "source",
            "source_system",
            "rule_id",
            "rule_name",
            "source_ip",
            "source_port",
            "destination_ip",
            "destination_port",
            "affected_host",
            "affected_user",
            "confidence",
            "risk_score",
            "external_id",
            "correlation_key",
            "details",
            "assigned_analyst",
            "assigned_analyst_id",
            "incident",
            "incident_reference",
            "occurrence_count",
            "detected_at",
            "received_at",
            "last_seen_at",
            "first_response_at",
            "resolved_at",
            "updated_at",
        ]
        read_only_fields = fields


class CaseInsensitiveChoiceField(serializers.ChoiceField):
    def to_internal_value(self, data):
        if isinstance(data, str):
            data = data.strip().lower()
        return super().to_internal_value(data)


class AlertIngestSerializer(serializers.ModelSerializer):
    """What an integration or the pipeline may send to raise an alert (unknown fields are
    ignored). Validation only; `services.ingest_alert` does the writing."""

    severity = CaseInsensitiveChoiceField(choices=Severity.choices)

    class Meta:
        model = Alert
        fields = [
            "title",
            "description",
            "severity",
            "category",
            "source",
            "source_system",
            "rule_id",
            "rule_name",
            "source_ip",
            "source_port",
            "destination_ip",
            "destination_port",
            "affected_host",
            "affected_user",
            "confidence",
            "risk_score",
            "external_id",
            "correlation_key",
            "details",
            "detected_at",
        ]
        # A second delivery of (source, external_id) is an update, not an error: the
        # service handles the unique constraint itself.
        validators = []

    def validate_details(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be an object.")
        return value


class IncidentSerializer(serializers.ModelSerializer):
    """An incident as REST answers it and as `incident_created` / `incident_updated` carry it.

    `alert_ids` reads the prefetched `alerts` (see `IncidentQuerySet.for_payload`)."""

    # The incident frontend shows and keys incidents by `incident_id`: the reference.
    incident_id = serializers.CharField(source="reference", read_only=True)
    owner = UserSummarySerializer(read_only=True, allow_null=True)
    created_by = UserSummarySerializer(read_only=True, allow_null=True)
    alert_ids = serializers.SerializerMethodField()
    alert_count = serializers.SerializerMethodField()
    description_html = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = [
            "id",
            "reference",
            "incident_id",
            "title",
            "description",
            "description_html",
            "severity",
            "priority",
            "status",
            "owner",
            "created_by",
            "alert_ids",
            "alert_count",
            "created_at",
            "updated_at",
            "first_response_at",
            "contained_at",
            "resolved_at",
            "closed_at",
            "merged_into",
        ]
        read_only_fields = fields

    def get_alert_ids(self, incident) -> list[int]:
        return [alert.pk for alert in incident.alerts.all()]

    def get_alert_count(self, incident) -> int:
        return len(incident.alerts.all())

    def get_description_html(self, incident) -> str:
        """The description's Markdown as sanitised HTML (`incidents.markup`)."""
        return render_markdown(incident.description)


class IncidentUpdateSerializer(serializers.Serializer):
    """The fields of an incident a PATCH may change (status has its own endpoint)."""

    title = serializers.CharField(max_length=300, required=False)
    description = serializers.CharField(allow_blank=True, required=False)
    severity = CaseInsensitiveChoiceField(choices=Severity.choices, required=False)
    priority = serializers.ChoiceField(
        choices=Incident._meta.get_field("priority").choices, required=False
    )
    owner = serializers.IntegerField(allow_null=True, required=False, min_value=1)


class TimelineEntrySerializer(serializers.ModelSerializer):
    actor = UserSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = IncidentTimelineEntry
        fields = ["id", "kind", "actor", "created_at", "field", "old_value", "new_value", "message"]
        read_only_fields = fields


class CommentSerializer(serializers.ModelSerializer):
    author = UserSummarySerializer(read_only=True, allow_null=True)
    body_html = serializers.SerializerMethodField()

    class Meta:
        model = IncidentComment
        fields = ["id", "author", "body", "body_html", "created_at"]
        read_only_fields = ["id", "author", "body_html", "created_at"]

    def get_body_html(self, comment) -> str:
        """The comment's Markdown as sanitised HTML (`incidents.markup`)."""
        return render_markdown(comment.body)


class StatusSerializer(serializers.Serializer):
    """The body of `POST .../status/`."""

    status = serializers.CharField()


def alert_payload(alert):
    return dict(AlertSerializer(alert).data)


def alert_payloads(alerts):
    """`alert_payload` of each alert, from one list serializer (its fields built once)."""
    return [dict(item) for item in AlertSerializer(alerts, many=True).data]


def incident_payload(incident):
    return dict(IncidentSerializer(incident).data)


def ownership_taken_data(alert, incident):
    """The reply to taking an alert, REST and socket alike (incidents-ws.md
    `alert_ownership_taken`): `incident` is the new incident, or None when the alert joined
    one the taker already had."""
    return {
        "alert_id": alert.pk,
        "incident": incident_payload(incident) if incident is not None else None,
        "incident_id": alert.incident_id,
        "alert": alert_payload(alert),
    }


def status_updated_data(alert):
    """The reply to an alert status change (incidents-ws.md `alert_status_updated`)."""
    return {"alert_id": alert.pk, "status": alert.status, "alert": alert_payload(alert)}
