"""Query-string filters of the audit API (shared by the list and the CSV export)."""

import django_filters
from django import forms
from rest_framework.exceptions import ValidationError

from threatlens.audit.models import AuditLog


class AddressFilter(django_filters.CharFilter):
    """An IPv4 or IPv6 address, validated: PostgreSQL's inet column fails on anything else."""

    field_class = forms.GenericIPAddressField


class AuditLogFilter(django_filters.FilterSet):
    """`actor` (username), `action` (exact, or a prefix ending in `*`: `auth.*`),
    `target_type`, `target_id`, `since`/`until` (ISO 8601; inclusive), `ip`."""

    actor = django_filters.CharFilter(field_name="actor_username", help_text="Actor's username.")
    action = django_filters.CharFilter(
        method="filter_action",
        help_text="Exact action (`auth.login`), or a prefix ending in `*` (`auth.*`).",
    )
    target_type = django_filters.CharFilter(help_text="Model label, e.g. `auth.user`.")
    target_id = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="ISO 8601, inclusive."
    )
    until = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lte", help_text="ISO 8601, inclusive."
    )
    ip = AddressFilter(field_name="ip_address", help_text="Client address (IPv4 or IPv6).")
    exclude_action = django_filters.CharFilter(
        method="filter_exclude_action",
        help_text="Comma-separated actions to leave out, each exact or a prefix ending in `*` "
        "(`realtime.connect,realtime.disconnect`: the console hides socket rows this way).",
    )

    class Meta:
        model = AuditLog
        fields = [
            "actor",
            "action",
            "target_type",
            "target_id",
            "since",
            "until",
            "ip",
            "exclude_action",
        ]

    def filter_action(self, queryset, name, value):
        if value.endswith("*"):
            return queryset.filter(action__startswith=value[:-1])
        return queryset.filter(action=value)

    def filter_exclude_action(self, queryset, name, value):
        for action in filter(None, (part.strip() for part in value.split(","))):
            if action.endswith("*"):
                queryset = queryset.exclude(action__startswith=action[:-1])
            else:
                queryset = queryset.exclude(action=action)
        return queryset

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        since, until = self.form.cleaned_data.get("since"), self.form.cleaned_data.get("until")
        if since and until and since > until:
            raise ValidationError({"until": ["until must not be before since."]})
        return queryset
