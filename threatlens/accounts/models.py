"""What the role defaults have already offered each role group."""

from django.contrib.auth.models import Group, Permission
from django.db import models


class OfferedRolePermission(models.Model):
    """A permission the role defaults (`threatlens.accounts.roles.ROLE_PERMISSIONS`) have
    granted to a role group once. It is never granted to that group again by `migrate`:
    an administrator who removed it meant it. Deleting the group (or the permission)
    deletes these rows, so a recreated role group gets its defaults again."""

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")
    permission = models.ForeignKey(Permission, on_delete=models.CASCADE, related_name="+")
    offered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["group", "permission"], name="accounts_offered_role_permission_unique"
            )
        ]

    def __str__(self):
        return f"{self.group_id}: {self.permission_id}"
