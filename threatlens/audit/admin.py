from django.contrib import admin

from threatlens.audit.models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """Read-only: the audit log is written by `threatlens.audit.services.record` only."""

    list_display = ["created_at", "actor_username", "action", "target_type", "target_repr",
                    "ip_address"]  # fmt: skip
    list_filter = ["action", "target_type", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["actor_username", "action", "target_repr", "target_id", "ip_address"]
    date_hierarchy = "created_at"
    list_select_related = False
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
