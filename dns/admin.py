"""Django admin for DNS. Saves here are plain `save()` calls: the receivers in
`dns.signals` raise serials, audit (with the admin as actor) and publish, as services do."""

from django import forms
from django.contrib import admin
from django.db import transaction

from dns.models import BulkOperation, Forwarder, Record, RpzRule, ThreatFeed, Zone, ZoneAccess


class ActorAdminMixin:
    """Tells the signal receivers who made the change."""

    def _mark(self, request, obj):
        obj._dns_actor = request.user
        obj._dns_request = request

    def save_model(self, request, obj, form, change):
        self._mark(request, obj)
        super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):
        self._mark(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        # One by one, so each deletion is audited and announced with its actor.
        for obj in queryset:
            self.delete_model(request, obj)

    def save_formset(self, request, form, formset, change):
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            self._mark(request, obj)
            obj.delete()
        for obj in instances:
            self._mark(request, obj)
            obj.save()
        formset.save_m2m()


class VersionCheckedForm(forms.ModelForm):
    """A change form that names the version it was read at, as API updates do: when the
    row has changed since, the form is refused (with the current version) instead of
    silently overwriting the other change. The check locks the row; the admin validates
    and saves in one transaction, so the lock holds until the save commits."""

    seen_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["seen_version"].initial = self.instance.version

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is None:
            return cleaned
        rows = type(self.instance).objects.filter(pk=self.instance.pk)
        if transaction.get_connection().in_atomic_block:
            rows = rows.select_for_update()
        current = rows.values_list("version", flat=True).first()
        seen = cleaned.get("seen_version")
        if current is not None and seen != current:
            name = self.instance._meta.verbose_name
            raise forms.ValidationError(
                f"This {name} was changed by someone else since this form was loaded (it "
                f"is at version {current} now, the form at {seen}). Reload it and apply "
                "your change again.",
                code="stale_version",
            )
        return cleaned


class ZoneAccessInline(admin.TabularInline):
    model = ZoneAccess
    fk_name = "zone"
    extra = 0
    fields = ["user", "group", "can_change", "granted_by", "created_at"]
    readonly_fields = ["granted_by", "created_at"]
    autocomplete_fields = []


@admin.register(Zone)
class ZoneAdmin(ActorAdminMixin, admin.ModelAdmin):
    form = VersionCheckedForm
    list_display = ["name", "zone_type", "serial", "is_active", "updated_at"]
    list_filter = ["zone_type", "is_active"]
    search_fields = ["name", "description"]
    readonly_fields = ["serial", "version", "created_by", "updated_by", "created_at", "updated_at"]
    inlines = [ZoneAccessInline]

    def get_queryset(self, request):
        return Zone.objects.for_user(request.user)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Record)
class RecordAdmin(ActorAdminMixin, admin.ModelAdmin):
    form = VersionCheckedForm
    list_display = ["name", "zone", "record_type", "value", "ttl", "updated_at"]
    list_filter = ["record_type", "zone"]
    search_fields = ["name", "value", "zone__name"]
    list_select_related = ["zone"]
    readonly_fields = ["version", "created_by", "updated_by", "created_at", "updated_at"]
    raw_id_fields = ["zone"]

    def get_queryset(self, request):
        return Record.objects.for_user(request.user)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(RpzRule)
class RpzRuleAdmin(ActorAdminMixin, admin.ModelAdmin):
    list_display = ["domain", "action", "category", "source", "feed", "is_active"]
    list_filter = ["action", "category", "is_active", "feed"]
    search_fields = ["domain", "description"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    raw_id_fields = ["feed"]


@admin.register(ThreatFeed)
class ThreatFeedAdmin(ActorAdminMixin, admin.ModelAdmin):
    list_display = ["name", "format", "action", "entries_count", "last_update", "is_active"]
    list_filter = ["format", "is_active"]
    search_fields = ["name"]
    readonly_fields = ["last_update", "entries_count", "last_error", "created_at", "updated_at"]


@admin.register(Forwarder)
class ForwarderAdmin(ActorAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "address", "port", "health_status", "last_check", "is_active"]
    list_filter = ["health_status", "is_active"]
    readonly_fields = [
        "health_status",
        "last_check",
        "last_error",
        "response_time_ms",
        "created_at",
        "updated_at",
    ]


@admin.register(BulkOperation)
class BulkOperationAdmin(admin.ModelAdmin):
    list_display = ["id", "zone", "operation", "status", "total", "progress", "created_at"]
    list_filter = ["status", "operation"]
    exclude = ["items"]
    readonly_fields = [
        "zone",
        "operation",
        "status",
        "total",
        "processed",
        "progress",
        "result",
        "errors",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
