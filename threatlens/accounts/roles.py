"""Roles: the groups `admin`, `analyst` and `viewer`, and the permissions each one holds.

The permissions of a role are declared here as data, as glob patterns over
`"app_label.codename"`, so that permissions of apps added later are granted as they appear:
`grant_role_permissions` runs from the accounts data migration and again after every
`migrate` (a `post_migrate` receiver). It grants a permission to a role once, when the
permission first appears, and remembers that (`OfferedRolePermission`): a permission an
administrator removed from a role stays removed across later `migrate` runs.
"""

import logging
from dataclasses import dataclass
from fnmatch import fnmatchcase

from django.apps import apps as global_apps
from django.db import DEFAULT_DB_ALIAS

from threatlens.audit.context import audit_context

logger = logging.getLogger(__name__)

ADMIN = "admin"
ANALYST = "analyst"
VIEWER = "viewer"
ROLES = (ADMIN, ANALYST, VIEWER)
"""Role names, strongest first."""


@dataclass(frozen=True)
class RolePermissions:
    """Which permissions a role holds: those matching an `include` pattern and no `exclude`
    pattern. Patterns are shell globs (`fnmatch`, case-sensitive) over `app_label.codename`."""

    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()

    def matches(self, name):
        return any(fnmatchcase(name, p) for p in self.include) and not any(
            fnmatchcase(name, p) for p in self.exclude
        )


ROLE_PERMISSIONS = {
    ADMIN: RolePermissions(include=("*",)),
    ANALYST: RolePermissions(
        include=(
            "incidents.*",
            "dns.view_*",
            "realtime.receive_security",
            "realtime.receive_system",
            "realtime.receive_dns",
        ),
        exclude=(
            "incidents.delete_*",
            "incidents.reassign_alert",
            "incidents.change_others_alert",
            # Zones are read per zone (DESIGN.md "Zones"); reading every zone is for admins
            # and whoever an admin grants it to.
            "dns.view_all_zones",
        ),
    ),
    VIEWER: RolePermissions(
        include=(
            "incidents.view_*",
            "dns.view_*",
            "realtime.receive_system",
            "realtime.receive_dns",
        ),
        exclude=("incidents.view_all_incidents", "dns.view_all_zones"),
    ),
}


def permissions_for_role(role, permission_names):
    """The subset of `permission_names` (`app_label.codename`) that `role` should hold."""
    spec = ROLE_PERMISSIONS[role]
    return {name for name in permission_names if spec.matches(name)}


def grant_role_permissions(*, apps=global_apps, using=DEFAULT_DB_ALIAS, app_label=None):
    """Create the role groups when missing and grant each one the matching permissions it
    was never offered, recording the offer (`OfferedRolePermission`).

    Idempotent, never removes anything, and never grants a permission again once offered
    (an administrator may have removed it). `apps` may be a migration's historical
    registry; in one that predates `OfferedRolePermission` (the first accounts migration)
    every missing permission is granted, as nothing can have been removed yet.
    `app_label` restricts the work to one app's permissions (the `post_migrate` receiver
    runs once per app). Rows go straight into the group-permission table: these grants are
    part of deploying, not an administrator's change, so they write no audit rows and
    publish nothing. Returns {role: number of permissions added}.
    """
    # Muted: with the global registry (after `flush`) creating a group would otherwise
    # be audited like an administrator's change.
    with audit_context(model_signals_muted=True):
        return _grant(apps, using, app_label)


def _grant(apps, using, app_label):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    through = Group.permissions.through
    try:
        Offered = apps.get_model("accounts", "OfferedRolePermission")
    except LookupError:
        Offered = None  # the first accounts migration: no record yet, nothing removed yet

    permissions = Permission.objects.using(using).select_related("content_type")
    if app_label is not None:
        permissions = permissions.filter(content_type__app_label=app_label)
    by_name = {f"{p.content_type.app_label}.{p.codename}": p.pk for p in permissions}

    added = {}
    for role in ROLES:
        group, _ = Group.objects.using(using).get_or_create(name=role)
        wanted = {by_name[name] for name in permissions_for_role(role, by_name)}
        if Offered is not None:
            offered = set(
                Offered.objects.using(using)
                .filter(group_id=group.pk, permission_id__in=wanted)
                .values_list("permission_id", flat=True)
            )
            new = wanted - offered
        else:
            new = wanted
        held = set(
            through.objects.using(using)
            .filter(group_id=group.pk, permission_id__in=new)
            .values_list("permission_id", flat=True)
        )
        missing = new - held
        if missing:
            through.objects.using(using).bulk_create(
                [through(group_id=group.pk, permission_id=pk) for pk in sorted(missing)],
                ignore_conflicts=True,  # another process migrating at the same time
            )
            logger.debug("granted %d permission(s) to role %s", len(missing), role)
        if Offered is not None and new:
            Offered.objects.using(using).bulk_create(
                [Offered(group_id=group.pk, permission_id=pk) for pk in sorted(new)],
                ignore_conflicts=True,
            )
        added[role] = len(missing)
    return added


def role_of(user):
    """The user's strongest role: "admin", "analyst", "viewer" or None.

    Superusers count as admins. Inactive users keep their role here; callers that
    authorise check `is_active` (as Django's auth does).
    """
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    if user.is_superuser:
        return ADMIN
    names = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    return next((role for role in ROLES if role in names), None)


def roles_of(user):
    """Every role group the user is a member of, strongest first (superusers: admin too)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return []
    names = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    if user.is_superuser:
        names.add(ADMIN)
    return [role for role in ROLES if role in names]
