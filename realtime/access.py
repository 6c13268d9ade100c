"""Who a connection belongs to and what it may receive, read once from the database.

A `Principal` is a small, immutable snapshot of a user (id, role, groups, permissions).
Connections keep one and compare events against it without touching the database;
a role or permission change replaces it (`realtime.control.user_access_changed`).
"""

from dataclasses import dataclass

from django.conf import settings

from realtime import catalogue
from realtime.catalogue import Audience, Family


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    role: str | None
    group_ids: frozenset
    permissions: frozenset
    is_superuser: bool = False

    def has_perm(self, permission):
        return permission is None or self.is_superuser or permission in self.permissions

    def as_dict(self):
        return {"id": self.user_id, "username": self.username, "role": self.role}


def principal_for(user):
    """Snapshot an active user (sync: reads groups and permissions)."""
    group_names = dict(user.groups.values_list("id", "name"))
    role = next((name for name in settings.ROLES if name in group_names.values()), None)
    if user.is_superuser:
        role = settings.ROLES[0]
    return Principal(
        user_id=user.pk,
        username=user.get_username(),
        role=role,
        group_ids=frozenset(group_names),
        permissions=frozenset(user.get_all_permissions()),
        is_superuser=user.is_superuser,
    )


def may_receive(principal, entry):
    """Whether the user may receive some events of this type at all (before audience)."""
    if entry.audience is Audience.USER:
        return True  # their own events; others' only with the see-all permission
    return principal.has_perm(entry.permission)


def receivable_types(principal):
    return frozenset(entry.name for entry in catalogue.all_types() if may_receive(principal, entry))


def expand(items, allowed):
    """Event type names from default-subscription items (`*`, `family:x`, `-name`, names)."""
    chosen = set()
    for item in items:
        if item == "*":
            chosen |= allowed
        elif item.startswith("family:"):
            family = Family(item.removeprefix("family:"))
            chosen |= {e.name for e in catalogue.all_types() if e.family == family}
        elif item.startswith("-"):
            chosen.discard(item[1:])
        else:
            chosen.add(item)
    return frozenset(chosen & allowed)


def default_subscriptions(principal, allowed):
    defaults = settings.REALTIME_DEFAULT_SUBSCRIPTIONS
    return expand(defaults.get(principal.role, defaults.get(None, ())), allowed)


def in_audience(principal, entry, users, groups):
    """Whether a LISTED or USER event with these recipients reaches this user."""
    if entry.audience is Audience.EVERYONE:
        return True
    if entry.see_all_permission and principal.has_perm(entry.see_all_permission):
        return True
    if users and principal.user_id in users:
        return True
    return bool(groups) and not principal.group_ids.isdisjoint(groups)
