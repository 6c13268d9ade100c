"""Receivers for auth and user changes: audit rows, user events, role grants.

Connected by importing this module from `AccountsConfig.ready()`. Whatever path changes a
user, a group or a permission (the Django admin, a shell, a service), the change is
audited here with old and new values, and a change of the user's access reaches the
user's live sockets (`permission_changed`, re-check or disconnect). The actor comes from
the audit context (`AuditContextMiddleware`, or a service's `audit_context`).
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import (
    m2m_changed,
    post_delete,
    post_migrate,
    post_save,
    pre_delete,
    pre_save,
)
from django.dispatch import receiver
from rest_framework.request import Request as DRFRequest

from realtime import control
from threatlens.accounts import passwords, services
from threatlens.accounts.roles import ROLES, grant_role_permissions
from threatlens.audit import context
from threatlens.audit.services import record

User = get_user_model()

# User fields whose changes are audited with old and new values.
TRACKED_USER_FIELDS = ("username", "email", "is_active", "is_staff", "is_superuser")
# Changes of these change what the user may do or receive.
ACCESS_FIELDS = ("is_active", "is_superuser")


def _audit_muted():
    return context.current().model_signals_muted


def _login_method(request):
    return "token" if isinstance(request, DRFRequest) else "session"


# --- Roles on every migrate -----------------------------------------------------------------


@receiver(post_migrate, dispatch_uid="threatlens.accounts.grant_role_permissions")
def grant_role_permissions_after_migrate(sender, app_config=None, using="default", apps=None, **kw):
    """Grant the roles the permissions of the app just migrated (they are created by
    Django's own post_migrate receiver for that app, which runs before this one)."""
    from django.apps import apps as global_apps

    registry = apps or global_apps
    try:
        registry.get_model("auth", "Group")
        registry.get_model("auth", "Permission")
    except LookupError:  # auth not migrated (yet) on this database
        return
    grant_role_permissions(apps=registry, using=using, app_label=sender.label)


# --- Logins and logouts ---------------------------------------------------------------------


@receiver(user_logged_in, dispatch_uid="threatlens.accounts.logged_in")
def audit_login(sender, request, user, **kwargs):
    # Session logins (admin, UI); token logins do not send this signal and are recorded
    # by the token view.
    services.record_login(user, method="session", request=request)


@receiver(user_logged_out, dispatch_uid="threatlens.accounts.logged_out")
def audit_logout(sender, request, user, **kwargs):
    if user is not None and user.is_authenticated:
        services.record_logout(user, method="session", request=request)


@receiver(user_logged_out, dispatch_uid="threatlens.accounts.logged_out_sockets")
def close_sockets_of_session(sender, request, user, **kwargs):
    # Sent before the session is flushed: its key still names the sockets it opened.
    session = getattr(request, "session", None)
    if session is not None and session.session_key:
        control.end_session(session.session_key)


@receiver(user_login_failed, dispatch_uid="threatlens.accounts.login_failed")
def audit_login_failed(sender, credentials, request=None, **kwargs):
    # `credentials` has the password already masked by Django; only the username is kept.
    username = credentials.get(User.USERNAME_FIELD) or credentials.get("username") or ""
    services.record_login_failed(username, method=_login_method(request), request=request)


# --- Users ----------------------------------------------------------------------------------


@receiver(pre_save, sender=User, dispatch_uid="threatlens.accounts.user_pre_save")
def remember_user_before_save(sender, instance, raw=False, using=None, update_fields=None, **kw):
    instance._audit_before = None
    if raw or instance._state.adding or instance.pk is None:
        return
    fields = [*TRACKED_USER_FIELDS, "password"]
    if update_fields is not None:
        fields = [f for f in fields if f in update_fields]
        if not fields:  # e.g. last_login on every login: nothing audited, no query
            return
    instance._audit_before = (
        sender._default_manager.using(using).filter(pk=instance.pk).values(*fields).first()
    )


def _is_password_change(user, old_hash):
    # Django re-hashes a correct password at login when the hasher or its work factor
    # changed: same password, new hash. That is not a change.
    return old_hash != user.password and not passwords.is_logging_in()


@receiver(post_save, sender=User, dispatch_uid="threatlens.accounts.user_post_save")
def audit_user_saved(sender, instance, created, raw=False, **kw):
    if raw:
        return
    if created:
        if not _audit_muted():
            record(
                "user.created",
                target=instance,
                new={f: getattr(instance, f) for f in TRACKED_USER_FIELDS},
            )
        return
    before = instance.__dict__.pop("_audit_before", None)
    if not before:
        return
    changed = [f for f in TRACKED_USER_FIELDS if f in before and before[f] != getattr(instance, f)]
    if not _audit_muted():
        if changed:
            record(
                "user.changed",
                target=instance,
                old={f: before[f] for f in changed},
                new={f: getattr(instance, f) for f in changed},
            )
        if "password" in before and _is_password_change(instance, before["password"]):
            record("user.password_changed", target=instance)
    if any(f in changed for f in ACCESS_FIELDS):
        services.notify_access_changed(instance.pk)


@receiver(post_delete, sender=User, dispatch_uid="threatlens.accounts.user_deleted")
def audit_user_deleted(sender, instance, **kw):
    record(
        "user.deleted",
        target=instance,
        old={f: getattr(instance, f) for f in TRACKED_USER_FIELDS},
    )
    control.disconnect_user(instance.pk, reason="Account removed")


# --- Many-to-many: group membership, user permissions, group permissions ---------------------


def _track_m2m(instance, action, reverse, pk_set, *, key, owners_on_clear, values, on_change):
    """Diff an m2m relation around a change, per owner object.

    The owner is the side whose set changed as seen by the audit (the user for its groups
    and permissions, the group for its permissions). On the forward side the owner is
    `instance`; on the reverse side (`group.user_set.add(...)`) the owners are `pk_set`,
    or everyone related when the relation is cleared. `values(owner_ids)` reads the
    related names per owner; `on_change(owner_id, before, after)` is called per owner whose
    set changed.
    """
    stash = instance.__dict__.setdefault("_audit_m2m", {})
    if action in ("pre_add", "pre_remove", "pre_clear"):
        if not reverse:
            owners = {instance.pk}
        elif pk_set is not None:
            owners = set(pk_set)
        else:
            owners = set(owners_on_clear(instance))
        stash[key] = (owners, values(owners))
    elif action in ("post_add", "post_remove", "post_clear"):
        owners, before = stash.pop(key, (None, None))
        if not owners:
            return
        after = values(owners)
        for owner in sorted(owners):
            old, new = before.get(owner, frozenset()), after.get(owner, frozenset())
            if old != new:
                on_change(owner, old, new)


def _grouped(rows):
    result = {}
    for owner, name in rows:
        result.setdefault(owner, set()).add(name)
    return {owner: frozenset(names) for owner, names in result.items()}


def _user_group_names(user_ids):
    return _grouped(
        User.groups.through.objects.filter(user_id__in=user_ids).values_list(
            "user_id", "group__name"
        )
    )


def _user_permission_names(user_ids):
    rows = User.user_permissions.through.objects.filter(user_id__in=user_ids).values_list(
        "user_id", "permission__content_type__app_label", "permission__codename"
    )
    return _grouped((owner, f"{app}.{codename}") for owner, app, codename in rows)


def _group_permission_names(group_ids):
    rows = Group.permissions.through.objects.filter(group_id__in=group_ids).values_list(
        "group_id", "permission__content_type__app_label", "permission__codename"
    )
    return _grouped((owner, f"{app}.{codename}") for owner, app, codename in rows)


def _user_target(user_id, instance):
    if isinstance(instance, User) and instance.pk == user_id:
        return {"target": instance}
    user = User._default_manager.filter(pk=user_id).first()
    return (
        {"target": user} if user else {"target_type": User._meta.label_lower, "target_id": user_id}
    )


def _roles_in(names):
    return [role for role in ROLES if role in names]


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="threatlens.accounts.user_groups")
def audit_user_groups(sender, instance, action, reverse, pk_set, **kw):
    def on_change(user_id, old, new):
        if not _audit_muted():
            record(
                "user.groups_changed",
                **_user_target(user_id, instance),
                old={"groups": sorted(old), "roles": _roles_in(old)},
                new={"groups": sorted(new), "roles": _roles_in(new)},
                details={"added": sorted(new - old), "removed": sorted(old - new)},
            )
        services.notify_access_changed(user_id)

    _track_m2m(
        instance, action, reverse, pk_set,
        key="user.groups",
        owners_on_clear=lambda group: group.user_set.values_list("pk", flat=True),
        values=_user_group_names,
        on_change=on_change,
    )  # fmt: skip


@receiver(
    m2m_changed, sender=User.user_permissions.through, dispatch_uid="threatlens.accounts.user_perms"
)
def audit_user_permissions(sender, instance, action, reverse, pk_set, **kw):
    def on_change(user_id, old, new):
        if not _audit_muted():
            record(
                "user.permissions_changed",
                **_user_target(user_id, instance),
                old={"permissions": sorted(old)},
                new={"permissions": sorted(new)},
                details={"added": sorted(new - old), "removed": sorted(old - new)},
            )
        services.notify_access_changed(user_id)

    _track_m2m(
        instance, action, reverse, pk_set,
        key="user.permissions",
        owners_on_clear=lambda permission: permission.user_set.values_list("pk", flat=True),
        values=_user_permission_names,
        on_change=on_change,
    )  # fmt: skip


@receiver(
    m2m_changed, sender=Group.permissions.through, dispatch_uid="threatlens.accounts.group_perms"
)
def audit_group_permissions(sender, instance, action, reverse, pk_set, **kw):
    def on_change(group_id, old, new):
        group = Group.objects.filter(pk=group_id).first()
        if not _audit_muted():
            # Only the difference: a role such as admin holds hundreds of permissions.
            record(
                "group.permissions_changed",
                target=group,
                target_type="auth.group",
                target_id=group_id,
                details={"added": sorted(new - old), "removed": sorted(old - new)},
            )
        for user_id in User.groups.through.objects.filter(group_id=group_id).values_list(
            "user_id", flat=True
        ):
            services.notify_access_changed(user_id)

    _track_m2m(
        instance, action, reverse, pk_set,
        key="group.permissions",
        owners_on_clear=lambda permission: permission.group_set.values_list("pk", flat=True),
        values=_group_permission_names,
        on_change=on_change,
    )  # fmt: skip


# --- Groups ---------------------------------------------------------------------------------


@receiver(pre_save, sender=Group, dispatch_uid="threatlens.accounts.group_pre_save")
def remember_group_name(sender, instance, raw=False, **kw):
    instance._audit_old_name = None
    if not raw and instance.pk is not None and not instance._state.adding:
        instance._audit_old_name = (
            Group.objects.filter(pk=instance.pk).values_list("name", flat=True).first()
        )


@receiver(post_save, sender=Group, dispatch_uid="threatlens.accounts.group_post_save")
def audit_group_saved(sender, instance, created, raw=False, **kw):
    if raw or _audit_muted():
        return
    if created:
        record("group.created", target=instance, new={"name": instance.name})
        return
    old_name = instance.__dict__.pop("_audit_old_name", None)
    if old_name is not None and old_name != instance.name:
        record(
            "group.changed", target=instance, old={"name": old_name}, new={"name": instance.name}
        )


@receiver(pre_delete, sender=Group, dispatch_uid="threatlens.accounts.group_pre_delete")
def remember_group_members(sender, instance, **kw):
    # Deleting a group removes its memberships without m2m signals: note who loses access.
    instance._audit_member_ids = list(instance.user_set.values_list("pk", flat=True))


@receiver(post_delete, sender=Group, dispatch_uid="threatlens.accounts.group_deleted")
def audit_group_deleted(sender, instance, **kw):
    members = instance.__dict__.pop("_audit_member_ids", [])
    record(
        "group.deleted",
        target_type="auth.group",
        target_id=instance.pk,
        target_repr=instance.name,
        old={"name": instance.name, "members": len(members)},
    )
    for user_id in members:
        services.notify_access_changed(user_id)
