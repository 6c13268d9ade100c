from rest_framework import serializers

from threatlens.audit.models import AuditLog

EXPORT_FIELDS = [
    "id",
    "created_at",
    "actor",
    "actor_username",
    "action",
    "target_type",
    "target_id",
    "target_repr",
    "old_values",
    "new_values",
    "details",
    "ip_address",
    "user_agent",
]


class AuditLogSerializer(serializers.ModelSerializer):
    """One audit row: who (`actor`, `actor_username`), did what (`action`), to which object
    (`target_*`), with which values (`old_values`, `new_values`, `details`), from where."""

    class Meta:
        model = AuditLog
        fields = EXPORT_FIELDS
        read_only_fields = EXPORT_FIELDS
