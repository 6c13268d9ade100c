"""Django admin for DNS. Every save and delete here calls `dns.services`, the same
functions the REST API calls, so admin changes get the same permission checks,
validation, serial and version bumps, audit rows and events (`threatlens.writeguard`
refuses a plain `save()`)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.http import HttpResponseRedirect

from dns import services
from dns.chunked import ZoneBusy
from dns.models import BulkOperation, Forwarder, Record, RpzRule, ThreatFeed, Zone, ZoneAccess

# What a service refuses with; the admin shows it as an error message and changes nothing.
REFUSALS = (
    ValidationError,
    PermissionDenied,
    services.StaleVersion,
    ZoneBusy,
    Zone.DoesNotExist,
    Record.DoesNotExist,
    RpzRule.DoesNotExist,
    ThreatFeed.DoesNotExist,
    Forwarder.DoesNotExist,
    ZoneAccess.DoesNotExist,
)


def _refusal_text(error):
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error)


class ServiceAdmin(admin.ModelAdmin):
    """A model admin whose writes are service calls: subclasses implement `create`,
    `update` and `remove` (each one service call, with `request.user` as the actor)."""

    def create(self, request, data, form):
        raise NotImplementedError

    def update(self, request, obj, data, form):
        raise NotImplementedError

    def remove(self, request, obj):
        raise NotImplementedError

    def save_model(self, request, obj, form, change):
        data = {
            key: form.cleaned_data[key]
            for key in self.model.EDITABLE_FIELDS
            if key in form.cleaned_data
        }
        saved = (
            self.update(request, obj, data, form) if change else self.create(request, data, form)
        )
        # The admin goes on with `obj` (inlines, log entry, redirect): make it the saved row.
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        self.remove(request, obj)

    def delete_queryset(self, request, queryset):
        # One service call per row, so each is checked, audited and announced; all or none.
        with transaction.atomic():
            for obj in queryset:
                self.remove(request, obj)

    def _refused(self, request, error):
        messages.error(request, f"Nothing was changed: {_refusal_text(error)}")
        return HttpResponseRedirect(request.get_full_path())

    # The admin runs these views in a transaction; a refusal rolls it back.
    def changeform_view(self, request, *args, **kwargs):
        try:
            return super().changeform_view(request, *args, **kwargs)
        except REFUSALS as error:
            return self._refused(request, error)

    def delete_view(self, request, *args, **kwargs):
        try:
            return super().delete_view(request, *args, **kwargs)
        except REFUSALS as error:
            return self._refused(request, error)

    def changelist_view(self, request, *args, **kwargs):
        try:
            return super().changelist_view(request, *args, **kwargs)
        except REFUSALS as error:
            return self._refused(request, error)


class VersionCheckedForm(forms.ModelForm):
    """A change form that names the version it was read at, as API updates do: a form
    read before someone else's change is refused (with the current version) instead of
    silently overwriting it. The service checks the version again under the row lock."""

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


@admin.register(Zone)
class ZoneAdmin(ServiceAdmin):
    form = VersionCheckedForm
    list_display = ["name", "zone_type", "serial", "is_active", "updated_at"]
    list_filter = ["zone_type", "is_active"]
    search_fields = ["name", "description"]
    readonly_fields = ["serial", "version", "created_by", "updated_by", "created_at", "updated_at"]
    fields = [*Zone.EDITABLE_FIELDS, "seen_version", *readonly_fields]
    inlines = [ZoneAccessInline]

    def get_queryset(self, request):
        return Zone.objects.for_user(request.user)

    def create(self, request, data, form):
        return services.create_zone(request.user, data, request=request)

    def update(self, request, obj, data, form):
        version = form.cleaned_data.get("seen_version")
        return services.update_zone(request.user, obj.pk, data, version=version, request=request)

    def remove(self, request, obj):
        services.delete_zone(request.user, obj.pk, request=request)

    def save_formset(self, request, form, formset, change):
        """Access rows are granted and revoked through the services, one call each."""
        zone, actor = form.instance, request.user
        changed = formset.save(commit=False)
        for access in formset.deleted_objects:
            services.revoke_access(actor, access.pk, zone_id=zone.pk, request=request)
        moved = {
            access.pk
            for access, fields in formset.changed_objects
            if {"user", "group"} & set(fields)
        }
        for access in changed:
            if access.pk in moved:  # now for someone else: revoke the old grant first
                services.revoke_access(actor, access.pk, zone_id=zone.pk, request=request)
            services.grant_access(
                actor,
                zone.pk,
                user=access.user,
                group=access.group,
                can_change=access.can_change,
                request=request,
            )


@admin.register(Record)
class RecordAdmin(ServiceAdmin):
    form = VersionCheckedForm
    list_display = ["name", "zone", "record_type", "value", "ttl", "updated_at"]
    list_filter = ["record_type", "zone"]
    search_fields = ["name", "value", "zone__name"]
    list_select_related = ["zone"]
    readonly_fields = ["version", "created_by", "updated_by", "created_at", "updated_at"]
    fields = ["zone", *Record.EDITABLE_FIELDS, "seen_version", *readonly_fields]
    raw_id_fields = ["zone"]

    def get_queryset(self, request):
        return Record.objects.for_user(request.user)

    def get_readonly_fields(self, request, obj=None):
        # A record stays in its zone (the services move no record between zones).
        return [*self.readonly_fields, "zone"] if obj is not None else self.readonly_fields

    def create(self, request, data, form):
        zone = form.cleaned_data["zone"]
        return services.create_record(request.user, zone.pk, data, request=request)

    def update(self, request, obj, data, form):
        version = form.cleaned_data.get("seen_version")
        return services.update_record(request.user, obj.pk, data, version=version, request=request)

    def remove(self, request, obj):
        services.delete_record(request.user, obj.pk, request=request)


@admin.register(RpzRule)
class RpzRuleAdmin(ServiceAdmin):
    list_display = ["domain", "action", "category", "source", "feed", "is_active"]
    list_filter = ["action", "category", "is_active", "feed"]
    search_fields = ["domain", "description"]
    readonly_fields = ["feed", "created_by", "created_at", "updated_at"]
    fields = [*RpzRule.EDITABLE_FIELDS, *readonly_fields]

    def create(self, request, data, form):
        return services.create_rpz_rule(request.user, data, request=request)

    def update(self, request, obj, data, form):
        return services.update_rpz_rule(request.user, obj.pk, data, request=request)

    def remove(self, request, obj):
        services.delete_rpz_rule(request.user, obj.pk, request=request)


@admin.register(ThreatFeed)
class ThreatFeedAdmin(ServiceAdmin):
    list_display = ["name", "format", "action", "entries_count", "last_update", "is_active"]
    list_filter = ["format", "is_active"]
    search_fields = ["name"]
    readonly_fields = ["last_update", "entries_count", "last_error", "created_at", "updated_at"]
    fields = [*ThreatFeed.EDITABLE_FIELDS, *readonly_fields]
    # A feed URL typed without a scheme means https (Django 6's default, chosen now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def create(self, request, data, form):
        return services.create_feed(request.user, data, request=request)

    def update(self, request, obj, data, form):
        return services.update_feed(request.user, obj.pk, data, request=request)

    def remove(self, request, obj):
        services.delete_feed(request.user, obj.pk, request=request)


@admin.register(Forwarder)
class ForwarderAdmin(ServiceAdmin):
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
    fields = [*Forwarder.EDITABLE_FIELDS, *readonly_fields]

    def create(self, request, data, form):
        return services.create_forwarder(request.user, data, request=request)

    def update(self, request, obj, data, form):
        return services.update_forwarder(request.user, obj.pk, data, request=request)

    def remove(self, request, obj):
        services.delete_forwarder(request.user, obj.pk, request=request)


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
