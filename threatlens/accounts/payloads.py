"""Data of the user-family events, defined once (unified-ws.md `user` family)."""

from typing import TypedDict

from django.utils import timezone

from threatlens.accounts.roles import role_of


class UserSessionEventData(TypedDict):
    """`user_login` and `user_logout`."""

    user_id: int
    username: str
    method: str  # "token" or "session"
    ip_address: str | None
    timestamp: object  # an aware datetime; the event encoder writes ISO 8601


class PermissionChangedData(TypedDict):
    """`permission_changed`: the user's access as it stands after the change."""

    user_id: int
    username: str
    role: str | None
    permissions: list[str]
    is_active: bool
    timestamp: object


def user_session_data(user, *, method, ip_address=None) -> UserSessionEventData:
    return UserSessionEventData(
        user_id=user.pk,
        username=user.get_username(),
        method=method,
        ip_address=ip_address,
        timestamp=timezone.now(),
    )


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
