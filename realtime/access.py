"""Who a connection belongs to and what it may receive, read once from the database.

A `Principal` is a small, immutable snapshot of a user (id, role, groups, permissions).
Connections keep one and compare events against it without touching the database;
a role or permission change replaces it (`realtime.control.user_access_changed`).

One snapshot serves every socket and request of a user in a process: it is read again
after REALTIME_ACCESS_CHECK_INTERVAL seconds, or at once when the user's access changes
(`forget`, called by `threatlens.accounts.services.notify_access_changed` and by every hub
on a control message). A change notice can fail to travel (made by another process in the
embedded default, or while Redis is down), so a snapshot carries a `stamp` of everything
it was read from, and every hub compares its sockets' stamps with the database's as often
(`access_stamps`): no snapshot outlives a change by more than that interval. The event
types a principal may receive are shared by every principal with the same permissions.
Thousands of sockets of a few users then hold a few snapshots.
"""

import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model

from realtime import catalogue
from realtime.catalogue import Audience, Family
from realtime.servers.django import forget_permission_caches


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    role: str | None
    group_ids: frozenset
    permissions: frozenset
    is_superuser: bool = False
    stamp: tuple | None = None  # what it was read from (`access_stamps`)

    def has_perm(self, permission):
        return permission is None or self.is_superuser or permission in self.permissions

    def as_dict(self):
        return {"id": self.user_id, "username": self.username, "role": self.role}


_principals = {}  # user id -> (Principal, monotonic time read)
_receivable = {}  # (permissions, is_superuser) -> frozenset of event type names


def principal_for(user):
    """The snapshot of an active user (sync: may read groups and permissions)."""
    cached = cached_principal(user.pk)
    if cached is not None:
        return cached
    principal = read_principal(user)
    _principals[user.pk] = (principal, time.monotonic())
    return principal


def cached_principal(user_id):
    """The snapshot held for this user if it is fresh, else None (no database)."""
    cached = _principals.get(user_id)
    ttl = settings.REALTIME["ACCESS_CHECK_INTERVAL"]  # a bound on staleness
    if cached is not None and time.monotonic() - cached[1] < ttl:
        return cached[0]
    return None


def forget(user_id):
    """Drop a user's snapshot: the next `principal_for` reads the database."""
    global _forgotten
    _principals.pop(user_id, None)
    _forgotten += 1


def forget_all():
    global _forgotten
    _principals.clear()
    _receivable.clear()
    _forgotten += 1


_forgotten = 0  # snapshots dropped so far


def forgotten():
    """How many times snapshots were dropped: a read that began before the last drop
    may hold what changed since (`realtime.auth` shares only reads begun after)."""
    return _forgotten


def read_principal(user):
    """Snapshot an active user from the database (sync)."""
    # ModelBackend caches permissions on the user object: maybe stale here.
    if not forget_permission_caches(user):
        user = get_user_model().objects.get(pk=user.pk)
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
        stamp=access_stamps([user.pk]).get(user.pk),
    )


def access_stamps(user_ids):
    """{user id: stamp} for the active users among `user_ids` (sync; four queries however
    many users). A stamp changes whenever anything a principal is made of does: the
    name, the superuser flag, groups, the user's and the groups' permissions. Inactive
    and deleted users have none."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user_model = get_user_model()
    users = {
        pk: (name, superuser)
        for pk, name, superuser in user_model.objects.filter(
            pk__in=user_ids, is_active=True
        ).values_list("pk", user_model.USERNAME_FIELD, "is_superuser")
    }
    if not users:
        return {}
    memberships = user_model.groups.through.objects.filter(user_id__in=users)
    groups_of = {}
    for user_id, group_id in memberships.values_list("user_id", "group_id"):
        groups_of.setdefault(user_id, set()).add(group_id)
    own = user_model.user_permissions.through.objects.filter(user_id__in=users)
    permissions_of = {}
    for user_id, permission_id in own.values_list("user_id", "permission_id"):
        permissions_of.setdefault(user_id, set()).add(permission_id)
    all_groups = set().union(*groups_of.values()) if groups_of else set()
    group_permissions = {}
    if all_groups:
        granted = Group.permissions.through.objects.filter(group_id__in=all_groups)
        for group_id, permission_id in granted.values_list("group_id", "permission_id"):
            group_permissions.setdefault(group_id, set()).add(permission_id)
    stamps = {}
    for pk, (name, superuser) in users.items():
        group_ids = groups_of.get(pk, set())
        stamps[pk] = (
            name,
            superuser,
            tuple(sorted(group_ids)),
            tuple(sorted(permissions_of.get(pk, ()))),
            tuple(sorted((g, p) for g in group_ids for p in group_permissions.get(g, ()))),
        )
    return stamps


def may_receive(principal, entry):
    """Whether the user may receive some events of this type at all (before audience)."""
    if entry.audience is Audience.USER:
        return True  # their own events; others' only with the see-all permission
    return principal.has_perm(entry.permission)


def receivable_types(principal):
    key = (principal.permissions, principal.is_superuser)
    allowed = _receivable.get(key)
    if allowed is None:
        allowed = _receivable[key] = frozenset(
            entry.name for entry in catalogue.all_types() if may_receive(principal, entry)
        )
    return allowed


def expand(items, allowed):
    """Event type names from default-subscription items (`*`, `family:x`, `-name`, names);
    the same answer for the same question until the catalogue changes."""
    key = (tuple(items), allowed, catalogue.version())
    names = _expanded.get(key)
    if names is None:
        if len(_expanded) > 1000:
            _expanded.clear()
        names = _expanded[key] = _expand(items, allowed)
    return names


_expanded = {}


def _expand(items, allowed):
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
