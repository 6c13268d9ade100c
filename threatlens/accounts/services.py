"""Writes on accounts: users and roles, logins and logouts, access-change notices.

Views, signal receivers and management commands call these, so the audit row and the
user-family events cannot be forgotten.
"""

import hashlib
import logging
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from realtime import access, control
from realtime.publishing import CommittedChange, Recipients, build_on_commit, publish_on_commit
from threatlens.accounts import events, throttling
from threatlens.accounts.roles import ADMIN, ROLES, role_of
from threatlens.audit.context import audit_context
from threatlens.audit.services import record
from threatlens.clientinfo import request_address

logger = logging.getLogger(__name__)

# The longest attempted username kept in the audit log: it is attacker-controlled input.
MAX_LOGGED_USERNAME = 150


class AccountError(ValueError):
    """A user could not be created or changed; nothing was written."""


# --- Users and roles ------------------------------------------------------------------------


def _user_state(user):
    return {
        "username": user.get_username(),
        "email": user.email,
        "role": role_of(user),
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
    }


def create_or_update_user(username, *, role, password, email=None, actor=None, is_active=None):
    """Create the user or update it: role, password, email, staff flag. Returns (user, created).

    The user ends up in exactly one role group (`role`; other role groups are left, other
    groups kept), staff when the role is admin (Django admin access) and not staff
    otherwise. `password` is checked against AUTH_PASSWORD_VALIDATORS; it may be None only
    for an existing user, whose password is then kept. `email=None` keeps the email;
    `is_active=None` keeps the active flag (new users are active). One audit row
    (`user.created` / `user.updated`, old and new values) records it; role changes also
    reach the user's live sockets (`permission_changed`). Raises `AccountError`, having
    changed nothing, on an unknown role or an invalid username, email or password.
    """
    if role not in ROLES:
        raise AccountError(f"Unknown role {role!r}: expected one of {', '.join(ROLES)}.")
    User = get_user_model()
    username_field = User._meta.get_field(User.USERNAME_FIELD)
    try:
        username_field.clean(username, None)
        if email:
            validate_email(email)
    except ValidationError as exc:
        raise AccountError(" ".join(exc.messages)) from None

    with transaction.atomic():
        user = (
            User._default_manager.select_for_update()
            .filter(**{User.USERNAME_FIELD: username})
            .first()
        )
        created = user is None
        if created and not password:
            raise AccountError(f"A password is required to create the user {username!r}.")
        candidate = user or User(**{User.USERNAME_FIELD: username}, email=email or "")
        if password is not None:
            try:
                validate_password(password, candidate)
            except ValidationError as exc:
                raise AccountError("Password rejected: " + " ".join(exc.messages)) from None
        try:
            role_group = Group.objects.get(name=role)
        except Group.DoesNotExist:
            raise AccountError(f"The role group {role!r} is missing: run migrate.") from None

        old = None if created else _user_state(user)
        # This function writes its own summary row: the model-signal receivers skip theirs
        # (they still tell the user's sockets about the change).
        with audit_context(actor=actor, model_signals_muted=True):
            if created:
                user = candidate
                user.is_active = True if is_active is None else is_active
            else:
                if email is not None:
                    user.email = email
                if is_active is not None:
                    user.is_active = is_active
            user.is_staff = role == ADMIN
            if password is not None:
                user.set_password(password)
            user.save()
            user.groups.remove(*Group.objects.filter(name__in=ROLES).exclude(pk=role_group.pk))
            user.groups.add(role_group)

        new = _user_state(user)
        if created:
            record("user.created", actor=actor, target=user, new=new)
        else:
            changed = [key for key in new if new[key] != old[key]]
            record(
                "user.updated",
                actor=actor,
                target=user,
                old={key: old[key] for key in changed},
                new={key: new[key] for key in changed},
                details={"password_changed": password is not None},
            )
    return user, created


# --- Logins and logouts ---------------------------------------------------------------------


def record_login(user, *, method, request=None):
    """A successful login ("token" or "session"): audit row, `user_login` to the user, and the
    username's failed-login counter cleared."""
    address = request_address(request) if request is not None else None
    with transaction.atomic():
        record("auth.login", actor=user, target=user, request=request, details={"method": method})
        publish_on_commit(
            "user_login",
            dict(events.user_session_data(user, method=method, ip_address=address)),
            recipients=Recipients.user(user),
        )
    throttling.clear_username(user.get_username())


def record_login_failed(username, *, method, request=None):
    """A failed login attempt: counted by the throttle and audited, with the attempted username
    and address (never the password). An attempt refused because the throttle was already
    closed is audited as `auth.login_throttled` and not counted again. Returns the
    `throttling.Throttled` in force, if any."""
    username = str(username or "")[:MAX_LOGGED_USERNAME]
    address = request_address(request) if request is not None else None
    throttled = throttling.check(username, address)
    if throttled is None:
        throttling.register_failure(username, address)
    User = get_user_model()
    target = (
        User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
        if username
        else None
    )
    details = {"username": username, "method": method}
    if throttled is not None:
        if not _first_throttled_attempt(username, address, throttled.retry_after):
            return throttled  # the window's first refusal was audited; this one is counted
        details["retry_after"] = throttled.retry_after
        details["throttled_by"] = list(throttled.scopes)
        details["further_attempts"] = "counted, not audited, until the throttle lifts"
    record(
        "auth.login_throttled" if throttled else "auth.login_failed",
        request=request,
        ip=address,
        target=target,
        target_type="" if target else User._meta.label_lower,
        target_repr="" if target else username,
        details=details,
    )
    return throttled


def _first_throttled_attempt(username, address, retry_after):
    """Whether this is the first throttled attempt for this username and address since the
    throttle closed: only that one is audited (an attacker hammering a closed throttle
    would otherwise write a row and a live `user_action` frame each time). The others are
    counted in the cache. Should the cache be down, every attempt
    is audited: the audit trail never goes missing."""
    key = "login-throttled-audited:" + hashlib.sha256(f"{address}|{username}".encode()).hexdigest()
    try:
        if cache.add(key, 0, timeout=max(1, int(retry_after))):
            return True
        cache.incr(key)
        return False
    except Exception:
        return True


def record_logout(user, *, method, request=None):
    """A logout: audit row and `user_logout` to the user."""
    address = request_address(request) if request is not None else None
    with transaction.atomic():
        record("auth.logout", actor=user, target=user, request=request, details={"method": method})
        publish_on_commit(
            "user_logout",
            dict(events.user_session_data(user, method=method, ip_address=address)),
            recipients=Recipients.user(user),
        )


# --- Access changes reaching live connections --------------------------------------------------


@dataclass(frozen=True)
class AccessChanged(CommittedChange):
    """One user's roles, permissions or activity changed in the transaction.

    Built after the commit, so that the role and permissions it reads are the committed
    ones, however many steps the change took (the admin's user form removes and adds
    groups separately): many changes of one user in one transaction merge into one
    `permission_changed`, the buffer of `realtime.publishing` seeing to it.
    """

    user_id: int

    @property
    def key(self):
        return self.user_id

    @classmethod
    def build(cls, changes):
        user_ids = [change.user_id for change in changes]
        for user_id in user_ids:
            access.forget(user_id)  # a read before the commit may have cached the old state
        users = get_user_model()._default_manager.in_bulk(user_ids)
        for user_id in user_ids:
            if user_id not in users:
                control.disconnect_user(user_id, reason="Account removed")
        return {
            user.pk: [
                (
                    "permission_changed",
                    dict(events.permission_changed_data(user)),
                    {"recipients": Recipients.user(user)},
                )
            ]
            for user in users.values()
        }

    @classmethod
    def after_publish(cls, changes):
        # Every server process re-checks (or closes, if deactivated) the user's sockets,
        # once the event telling the user why is on its way.
        for change in changes:
            control.user_access_changed(change.user_id)


def notify_access_changed(user_id, *, using=None):
    """After commit, publish `permission_changed` to the user and have every server process
    re-check (or close, if deactivated) the user's sockets. Called many times in one
    transaction, the user is told once, with the committed state."""
    access.forget(user_id)
    build_on_commit(AccessChanged(user_id), using=using)
