"""Cluster-wide instructions to live connections, sent to every server process's hub."""

import hashlib
from functools import partial

from django.db import transaction

from realtime import access
from realtime.groups import CONTROL_GROUP
from realtime.transport import send_to_hubs


def user_access_changed(user_id):
    """After commit: every socket of this user re-reads the user's active flag, roles and
    permissions; a deactivated user is disconnected, others get their subscriptions
    re-checked (and `permission_changed`, which the caller publishes)."""
    _on_commit({"type": "hub.control", "action": "recheck_user", "user_id": user_id})


def disconnect_user(user_id, *, reason="Disconnected by an administrator"):
    """After commit: close every socket of this user, on every server process."""
    _on_commit(
        {"type": "hub.control", "action": "disconnect_user", "user_id": user_id, "reason": reason}
    )


def end_session(session_key):
    """After commit: close the sockets this session opened, on every server process. The
    message names the key's digest, never the key. (Sessions that end without a logout,
    expired or by a password change, are found by every hub's periodic access check.)"""
    message = {"type": "hub.control", "action": "end_session", "session": digest(session_key)}
    transaction.on_commit(partial(send_to_hubs, CONTROL_GROUP, message))


def digest(session_key):
    return hashlib.sha256(session_key.encode()).hexdigest()


def _on_commit(message):
    # The user's snapshot goes in this process now and at commit (a read in between may
    # have cached the old state), in the others when the message reaches their hubs.
    access.forget(message["user_id"])
    transaction.on_commit(partial(_send, message))


def _send(message):
    access.forget(message["user_id"])
    send_to_hubs(CONTROL_GROUP, message)
