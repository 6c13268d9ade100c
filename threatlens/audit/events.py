"""The event type of the audit log, declared with its payload."""

from typing import Any, TypedDict

from realtime import catalogue
from realtime.catalogue import PRIORITY_LOW, RECEIVE_AUDIT, Family


class UserActionData(TypedDict):
    """threatlens-ws.md `user_action`: who did what to which object."""

    audit_id: int
    action: str  # a dotted verb: alert.take_ownership, auth.login_failed, ...
    user: str | None
    user_id: int | None
    target_type: str
    target_id: str
    target: str
    ip_address: str | None
    category: str  # "audit"
    source: str  # the action's first part: alert, auth, dns, ...
    timestamp: Any


def user_action_data(entry) -> UserActionData:
    """The `user_action` data of a saved `AuditLog` row."""
    return {
        "audit_id": entry.pk,
        "action": entry.action,
        "user": entry.actor_username or None,
        "user_id": entry.actor_id,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "target": entry.target_repr,
        "ip_address": entry.ip_address,
        "category": "audit",
        "source": entry.action.split(".")[0],
        "timestamp": entry.created_at,
    }


catalogue.declare(
    "user_action",
    family=Family.THREATLENS,
    priority=PRIORITY_LOW,
    permission=RECEIVE_AUDIT,
    description="An audited action: who did what to which object.",
    builder=user_action_data,
    schema=UserActionData,
)
