"""The user admin, with an action to close a user's live sockets."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from realtime import control
from threatlens.audit.services import record

User = get_user_model()


@admin.action(description="Close their live sockets (all server processes)")
def disconnect_sockets(modeladmin, request, queryset):
    for user in queryset:
        control.disconnect_user(user.pk)
        record("realtime.disconnect_user", request=request, target=user)
    modeladmin.message_user(
        request, f"Closing the live sockets of {queryset.count()} user(s).", messages.SUCCESS
    )


class ThreatLensUserAdmin(UserAdmin):
    actions = [*UserAdmin.actions, disconnect_sockets]


admin.site.unregister(User)
admin.site.register(User, ThreatLensUserAdmin)
