"""Cluster-wide instructions to live connections: sent to every server process's hub (the
functions below, after commit), and carried out there by its `ControlHandler`."""

import asyncio
import hashlib
import logging
from functools import partial

from django.db import transaction

from realtime import access
from realtime.groups import CONTROL_GROUP
from realtime.transport import ORIGIN, send_to_hubs

logger = logging.getLogger(__name__)


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


class ControlHandler:
    """The receiving end in each hub: carries out a control message on this process's
    connections.

    `connections_of(user_id)` lists a user's local connections, `end_session(digest)`
    closes a session's sockets, `report_connections(request_id)` (a coroutine function)
    answers a `/ws/info` request of another process."""

    def __init__(self, *, connections_of, end_session, report_connections):
        self.connections_of = connections_of
        self.end_session = end_session
        self._report_connections = report_connections

    def handle(self, message):
        action = message.get("action")
        if action == "report_connections":
            if message.get("origin") != ORIGIN:  # the asking process reads its own live
                asyncio.get_running_loop().create_task(
                    self._report_connections(message.get("request_id"))
                )
            return
        if action == "end_session":
            self.end_session(message.get("session"))
            return
        if action not in ("recheck_user", "disconnect_user"):
            logger.warning("unknown hub control action %r", action)
            return
        user_id = message.get("user_id")
        access.forget(user_id)  # the change may have happened in another process
        for connection in self.connections_of(user_id):
            owner = connection.owner  # a realtime.members.HubMember
            if owner is None:
                continue
            if action == "recheck_user":
                notice = owner.access_changed()
            else:
                notice = owner.disconnected(message.get("reason"))
            asyncio.get_running_loop().create_task(notice)
