from rest_framework.permissions import BasePermission


class CanViewAuditLog(BasePermission):
    """Holders of `audit.view_auditlog` (the admin role)."""

    message = "Reading the audit log needs the audit.view_auditlog permission."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("audit.view_auditlog"))
