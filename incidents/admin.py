"""Django admin for alerts and incidents.

Admin saves go through `Model.save()`, so the post_save receivers broadcast them like any
other change; `save_model` adds the audit row. Status changes are checked against the same
transition tables the services use. Timeline and comments are read-only here (they are
history), and incident references are allocated by `Incident.save()`.
"""

from django import forms
from django.contrib import admin

from incidents.models import (
    ALERT_TRANSITIONS,
    INCIDENT_TRANSITIONS,
    Alert,
    Incident,
    IncidentComment,
    IncidentTimelineEntry,
    IncidentWatcher,
    RawLog,
    SecurityEvent,
    TimelineKind,
    alert_transition_allowed,
    incident_transition_allowed,
)
from threatlens.audit.services import record


def _check_transition(form, allowed, table):
    status = form.cleaned_data.get("status")
    old = form.initial.get("status") if form.instance.pk else None
    if old and status and status != old and not allowed(old, status):
        options = ", ".join(sorted(table.get(old, ()))) or "none"
        raise forms.ValidationError(
            {"status": f"Cannot go from {old} to {status} (allowed: {options})."}
        )


class AlertAdminForm(forms.ModelForm):
    def clean(self):
        cleaned = super().clean()
        _check_transition(self, alert_transition_allowed, ALERT_TRANSITIONS)
        return cleaned


class IncidentAdminForm(forms.ModelForm):
    def clean(self):
        cleaned = super().clean()
        _check_transition(self, incident_transition_allowed, INCIDENT_TRANSITIONS)
        return cleaned


def _changes(form, obj):
    old, new = {}, {}
    for name in form.changed_data:
        if name in form.initial:
            old[name] = _plain(form.initial.get(name))
        new[name] = _plain(getattr(obj, f"{name}_id", getattr(obj, name, None)))
    return old, new


def _plain(value):
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    return str(value)


class AuditedAdmin(admin.ModelAdmin):
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        old, new = _changes(form, obj)
        label = obj._meta.model_name
        record(
            f"{label}.admin_change" if change else f"{label}.admin_create",
            target=obj,
            request=request,
            old=old or None,
            new=new or None,
        )


@admin.register(Alert)
class AlertAdmin(AuditedAdmin):
    form = AlertAdminForm
    list_display = [
        "id",
        "title",
        "severity",
        "status",
        "source",
        "category",
        "assigned_analyst",
        "incident",
        "occurrence_count",
        "received_at",
    ]
    list_filter = ["status", "severity", "source", "category", "received_at"]
    search_fields = [
        "title",
        "description",
        "external_id",
        "correlation_key",
        "affected_host",
        "affected_user",
        "source_ip",
        "destination_ip",
    ]
    list_select_related = ["assigned_analyst", "incident"]
    raw_id_fields = ["assigned_analyst", "incident"]
    readonly_fields = ["occurrence_count", "received_at", "last_seen_at", "updated_at"]
    date_hierarchy = "received_at"


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TimelineInline(ReadOnlyInline):
    model = IncidentTimelineEntry
    fields = ["created_at", "actor", "kind", "field", "old_value", "new_value", "message"]
    readonly_fields = fields


class CommentInline(ReadOnlyInline):
    model = IncidentComment
    fields = ["created_at", "author", "body"]
    readonly_fields = fields


class AlertInline(ReadOnlyInline):
    model = Alert
    fields = ["id", "title", "severity", "status", "assigned_analyst", "received_at"]
    readonly_fields = fields
    show_change_link = True


class WatcherInline(admin.TabularInline):
    model = IncidentWatcher
    extra = 0
    raw_id_fields = ["user"]
    readonly_fields = ["created_at"]


@admin.register(Incident)
class IncidentAdmin(AuditedAdmin):
    form = IncidentAdminForm
    list_display = ["reference", "title", "severity", "priority", "status", "owner", "created_at"]
    list_filter = ["status", "severity", "priority", "created_at"]
    search_fields = ["reference", "title", "description"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner", "created_by"]
    readonly_fields = ["reference", "updated_at"]
    date_hierarchy = "created_at"
    inlines = [AlertInline, TimelineInline, CommentInline, WatcherInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        # The incident's own history shows admin edits too.
        if not change:
            IncidentTimelineEntry.objects.create(
                incident=obj,
                actor=request.user,
                kind=TimelineKind.CREATED,
                message="Created in the admin",
            )
            return
        old, new = _changes(form, obj)
        kinds = {"status": TimelineKind.STATUS_CHANGED, "owner": TimelineKind.OWNER_CHANGED}
        for name in form.changed_data:
            IncidentTimelineEntry.objects.create(
                incident=obj,
                actor=request.user,
                kind=kinds.get(name, TimelineKind.FIELD_CHANGED),
                field=name,
                old_value=old.get(name),
                new_value=new.get(name),
                message=f"{name} changed in the admin",
            )


@admin.register(RawLog)
class RawLogAdmin(admin.ModelAdmin):
    """Uploaded and watched logs and how their processing went (read-only)."""

    list_display = [
        "id",
        "source",
        "status",
        "stage",
        "lines_total",
        "lines_malformed",
        "events_created",
        "alerts_raised",
        "received_at",
        "created_by",
    ]
    list_filter = ["status", "source"]
    search_fields = ["source", "file_name"]
    readonly_fields = [f.name for f in RawLog._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(SecurityEvent)
class SecurityEventAdmin(admin.ModelAdmin):
    """Security events the pipeline found (read-only)."""

    list_display = [
        "event_id",
        "timestamp",
        "severity",
        "category",
        "source",
        "rule_id",
        "message",
        "alert",
    ]
    list_filter = ["category", "severity", "source"]
    search_fields = ["event_id", "message", "rule_id", "correlation_key", "user"]
    date_hierarchy = "timestamp"
    list_select_related = ["alert"]
    readonly_fields = [f.name for f in SecurityEvent._meta.fields]

    def has_add_permission(self, request):
        return False


# Sigma rules have their own admin module, kept with their package.
import incidents.sigma.admin  # noqa: E402, F401
