"""Audit rows of sockets (connect, disconnect, auth failures, subscription and filter
changes), written by group commit.

Thousands of sockets connecting at once (a restart sends them all back) each write two
rows, and each row is a transaction and a `user_action` event. Written one by one they
queue behind each other in the thread that runs the consumers' database calls. Here a
row waits for the write under way, if any, and then goes with every row that arrived
meanwhile in one transaction (one INSERT for the rows, one for their events). A socket
still goes on only once its row is committed, and a quiet server writes each row at once.
"""

import asyncio
import logging

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

logger = logging.getLogger(__name__)

# Rows in one transaction at most. Larger batches connect no faster, and the peak of
# building hundreds of rows at once, while sockets keep connecting, stays in the process's
# memory afterwards (500: +4.5 MB per 1,000 sockets connected; 20: none measurable).
MAX_BATCH = 20


class AuditWriter:
    """The group commit of one event loop's sockets."""

    def __init__(self):
        self._waiting = []  # (row, future) not yet being written
        self._writer = None

    async def write(self, action, principal, details, scope):
        """Write one row; returns once it is committed (raises if it could not be)."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append(((action, principal, details, scope), done))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_waiting())
        await done

    async def _write_waiting(self):
        try:
            while self._waiting:
                batch = self._waiting[:MAX_BATCH]
                self._waiting = self._waiting[MAX_BATCH:]
                try:
                    await database_sync_to_async(write_rows)([row for row, _ in batch])
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for _, done in batch:
                        if not done.done():  # its socket may have gone meanwhile
                            done.set_result(None)
        finally:
            self._writer = None


_writers = {}


def writer():
    """The running event loop's writer."""
    loop = asyncio.get_running_loop()
    found = _writers.get(loop)
    if found is None:
        for old_loop in [old for old in _writers if old.is_closed()]:
            del _writers[old_loop]
        found = _writers[loop] = AuditWriter()
    return found


def write_rows(rows):
    """Write socket audit rows `(action, principal, details, scope)` in one transaction
    (sync). Should one name a user deleted since, each is written on its own instead."""
    from threatlens.audit.services import record_many

    try:
        with transaction.atomic():
            record_many([_row(*row) for row in rows])
    except IntegrityError:
        for row in rows:
            _write_alone(*row)


def _write_alone(action, principal, details, scope):
    from threatlens.audit.services import record

    try:
        with transaction.atomic():
            record(**_row(action, principal, details, scope))
    except IntegrityError:
        if principal is None:
            raise
        # The user was deleted since: the row names them in its details instead.
        details = {**details, "username": principal.username}
        record(**_row(action, None, details, scope))


def _row(action, principal, details, scope):
    from threatlens.clientinfo import scope_address

    # The row needs the user's id and name, which the principal has: no query for them.
    actor = (
        get_user_model()(pk=principal.user_id, username=principal.username)
        if principal is not None
        else None
    )
    user_agent = ""
    for name, value in scope.get("headers", ()):
        if name == b"user-agent":
            user_agent = value.decode("latin-1")
    return {
        "action": action,
        "actor": actor,
        "details": details,
        "ip": scope_address(scope),
        "user_agent": user_agent,
        "target_type": "realtime.connection",
        "target_id": details.get("client_id", ""),
    }
