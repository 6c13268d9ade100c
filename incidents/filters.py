"""Query-string filters of `/api/alerts/` and `/api/incidents/`."""

import django_filters
from django.db.models import F, Q

from incidents.models import (
    INCIDENT_STATUS_ALIASES,
    Alert,
    AlertStatus,
    Incident,
    IncidentStatus,
    Priority,
    Severity,
)
from incidents.sigma.filters import TechniqueFilter


class OwnerFilter(django_filters.CharFilter):
    """`owner=me`, `owner=none` (unowned), `owner=<user id>` or `owner=<username>`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("help_text", "me, none, a user id or a username")
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if not value:
            return qs
        value = value.strip()
        if value.lower() == "me":
            user = getattr(self.parent.request, "user", None)
            return qs.filter(**{self.field_name: user}) if user and user.pk else qs.none()
        if value.lower() == "none":
            return qs.filter(**{f"{self.field_name}__isnull": True})
        if value.isdigit():
            return qs.filter(
                Q(**{f"{self.field_name}_id": int(value)})
                | Q(**{f"{self.field_name}__username": value})
            )
        return qs.filter(**{f"{self.field_name}__username": value})


class StableOrderingFilter(django_filters.OrderingFilter):
    """`ordering=severity,-detected_at`; ties broken by id so pages don't overlap. Empty
    values (an alert without a risk score) sort last either way, on every database
    (PostgreSQL would put them first in a descending order)."""

    def filter(self, qs, value):
        qs = super().filter(qs, value)
        if not value:
            return qs
        names = [name for name in qs.query.order_by if isinstance(name, str)]
        if not any(name.lstrip("-") == "id" for name in names):
            names.append("-id")
        return qs.order_by(
            *(
                F(name[1:]).desc(nulls_last=True)
                if name.startswith("-")
                else F(name).asc(nulls_last=True)
                for name in names
            )
        )


class AlertFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=AlertStatus.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    owner = OwnerFilter(field_name="assigned_analyst")
    source = django_filters.CharFilter()
    category = django_filters.CharFilter()
    correlation_key = django_filters.CharFilter()
    technique = TechniqueFilter(field_name="details__attack__techniques")
    incident = django_filters.NumberFilter(field_name="incident_id")
    detected_after = django_filters.IsoDateTimeFilter(field_name="detected_at", lookup_expr="gte")
    detected_before = django_filters.IsoDateTimeFilter(field_name="detected_at", lookup_expr="lt")
    received_after = django_filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="gte")
    received_before = django_filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="lt")
    ordering = StableOrderingFilter(
        fields=(
            ("received_at", "received_at"),
            ("detected_at", "detected_at"),
            ("last_seen_at", "last_seen_at"),
            ("severity_rank", "severity"),
            ("status", "status"),
            ("risk_score", "risk_score"),
            ("id", "id"),
        )
    )

    class Meta:
        model = Alert
        fields = []


class IncidentStatusFilter(django_filters.MultipleChoiceFilter):
    """`status=new&status=investigating`; older names (`open`) are accepted as aliases."""

    def __init__(self, *args, **kwargs):
        aliases = [(alias, status.label) for alias, status in INCIDENT_STATUS_ALIASES.items()]
        super().__init__(*args, choices=[*IncidentStatus.choices, *aliases], **kwargs)

    def filter(self, qs, value):
        return super().filter(qs, [INCIDENT_STATUS_ALIASES.get(item, item) for item in value])


class IncidentFilter(django_filters.FilterSet):
    status = IncidentStatusFilter()
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    priority = django_filters.MultipleChoiceFilter(choices=Priority.choices)
    owner = OwnerFilter(field_name="owner")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    updated_after = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    updated_before = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="lt")
    ordering = StableOrderingFilter(
        fields=(
            ("created_at", "created_at"),
            ("updated_at", "updated_at"),
            ("severity_rank", "severity"),
            ("priority", "priority"),
            ("status", "status"),
            ("id", "id"),
        )
    )

    class Meta:
        model = Incident
        fields = []
