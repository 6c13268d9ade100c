"""Django admin for alerts and incidents.

Every change here is a call to `incidents.services`, the functions REST and the socket
call, so it gets the same permission checks, transition rules, timeline entries, audit
rows and broadcasts. The admin edits what those services change: an alert's status; an
incident's status, title, description, severity, priority and owner. Alerts and
incidents are created by ingest and the services (taking, escalating), and are not
deleted here. Timeline, comments and watchers are read-only (they are history).
"""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect

from incidents import services
from incidents.exceptions import IncidentsError
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
    alert_transition_allowed,
    incident_transition_allowed,
)


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


class ServiceAdmin(admin.ModelAdmin):
    """Changes through `incidents.services` (`apply`); no adding or deleting here."""

    editable = ()

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in self.editable]

    def save_model(self, request, obj, form, change):
        self.apply(request, obj, {name: form.cleaned_data[name] for name in form.changed_data})
        obj.refresh_from_db()

    def apply(self, request, obj, changed):
        raise NotImplementedError

    def changeform_view(self, request, *args, **kwargs):
        # The admin runs the view in a transaction: a refusal rolls it back.
        try:
            return super().changeform_view(request, *args, **kwargs)
        except IncidentsError as error:
            messages.error(request, f"Nothing was changed: {error}")
            return HttpResponseRedirect(request.get_full_path())


@admin.register(Alert)
class AlertAdmin(ServiceAdmin):
    form = AlertAdminForm
    editable = ("status",)
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
    date_hierarchy = "received_at"

    def apply(self, request, obj, changed):
        if "status" in changed:
            services.update_alert_status(
                obj.pk, changed["status"], actor=request.user, request=request
            )


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


class WatcherInline(ReadOnlyInline):
    model = IncidentWatcher
    fields = ["user", "created_at"]
    readonly_fields = fields


@admin.register(Incident)
class IncidentAdmin(ServiceAdmin):
    form = IncidentAdminForm
    editable = ("status", "title", "description", "severity", "priority", "owner")
    list_display = ["reference", "title", "severity", "priority", "status", "owner", "created_at"]
    list_filter = ["status", "severity", "priority", "created_at"]
    search_fields = ["reference", "title", "description"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]
    date_hierarchy = "created_at"
    inlines = [AlertInline, TimelineInline, CommentInline, WatcherInline]

    def apply(self, request, obj, changed):
        if "status" in changed:
            services.update_incident_status(
                obj.pk, changed.pop("status"), actor=request.user, request=request
            )
        if "owner" in changed:
            owner = changed["owner"]
            changed["owner"] = owner.pk if owner is not None else None
        if changed:
            services.update_incident(obj.pk, changed, actor=request.user, request=request)


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
