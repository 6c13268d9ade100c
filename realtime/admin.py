"""Stored events in the admin: read-only (they are the replay log)."""

from django.contrib import admin

from realtime.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("id", "event_type", "priority", "category", "source", "created_at", "origin")
    list_filter = ("event_type", "priority")
    search_fields = ("event_type", "category", "source")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
