"""Event types of the user family, each declared with its payload.

Each goes to the user it concerns (and to admins holding `SEE_ALL_USER_EVENTS`). The
`TypedDict` beside each builder is the data's schema; `session_expired` is built by
`realtime` through `catalogue.build`, since `realtime` imports no project app.
"""

from typing import Any, TypedDict

from django.utils import timezone

from realtime import catalogue
from realtime.catalogue import SEE_ALL_USER_EVENTS, Audience, Family
from threatlens.accounts.roles import role_of


class UserSessionEventData(TypedDict):
    """`user_login` and `user_logout`."""

    user_id: int
    username: str
    method: str  # "token" or "session"
    ip_address: str | None
    timestamp: Any  # an aware datetime; the event encoder writes ISO 8601


def user_session_data(user, *, method, ip_address=None) -> UserSessionEventData:
    return UserSessionEventData(
        user_id=user.pk,
        username=user.get_username(),
        method=method,
        ip_address=ip_address,
        timestamp=timezone.now(),
    )


class SessionExpiredData(TypedDict):
    """`session_expired`: the token of one of the user's live sockets expired."""

    user_id: int
    username: str
    reason: str  # "token_expired"
    timestamp: Any


def session_expired_data(*, user_id, username, reason="token_expired") -> SessionExpiredData:
    return SessionExpiredData(
        user_id=user_id, username=username, reason=reason, timestamp=timezone.now()
    )


class PermissionChangedData(TypedDict):
    """`permission_changed`: the user's access as it stands after the change."""

    user_id: int
    username: str
    role: str | None
    permissions: list[str]
    is_active: bool
    timestamp: Any


def permission_changed_data(user) -> PermissionChangedData:
    """Read from the database: pass a freshly loaded user (permission caches are per object)."""
    return PermissionChangedData(
        user_id=user.pk,
        username=user.get_username(),
        role=role_of(user),
        permissions=sorted(user.get_all_permissions()) if user.is_active else [],
        is_active=user.is_active,
        timestamp=timezone.now(),
    )


for name, priority, description, builder, schema in [
    (
        "user_login",
        3,
        "The user logged in (REST token or session).",
        user_session_data,
        UserSessionEventData,
    ),
    ("user_logout", 3, "The user logged out.", user_session_data, UserSessionEventData),
    (
        "session_expired",
        8,
        "The user's token expired on a live socket.",
        session_expired_data,
        SessionExpiredData,
    ),
    (
        "permission_changed",
        8,
        "The user's roles or permissions changed.",
        permission_changed_data,
        PermissionChangedData,
    ),
]:
    catalogue.declare(
        name,
        family=Family.USER,
        priority=priority,
        permission=None,
        audience=Audience.USER,
        see_all_permission=SEE_ALL_USER_EVENTS,
        description=description,
        builder=builder,
        schema=schema,
    )
