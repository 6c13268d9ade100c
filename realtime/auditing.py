"""Audit rows of sockets, handed to the audit log through the `socket_audit` signal.

`realtime` imports no project app: it describes each row (`SocketAuditRow`) and sends the
signal from a database thread; the audit log's receiver (`threatlens.audit`, connected in
its `ready()`) writes them in one transaction and, when `live` is true, tells admins
(`user_action`). With no receiver connected the rows go nowhere.

Two ways in:

- **Awaited** (`writer().write(...)`): rows whose caller waits for the commit (failed
  authentications, a publisher socket's emits). A row waits for the write under way, if
  any, and then goes with every row that arrived meanwhile in one transaction; a quiet
  server writes each row at once. They are published live.
- **In the background** (`session_writer().add(...)`): a socket's own session (connect,
  disconnect, subscription and filter changes). Thousands of sockets connect at once
  after a deploy: the socket goes on at once, its row is written with the others once they
  pause for FLUSH_DELAY seconds (within FLUSH_AT_MOST), and it is not published live. One
  `user_action` per socket, fanned out to every admin socket, was most of an admin
  socket's connect (the console hides these rows anyway; the audit API lists them).
  Rows still waiting when the process is killed outright are lost; on SIGTERM they are
  written before the process stops (`flush_all`).
"""

import asyncio
import logging
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.dispatch import Signal

from realtime.client_address import scope_address, scope_user_agent

logger = logging.getLogger(__name__)

# Sent with `rows` (a list of SocketAuditRow) and `live` (publish each as it is written),
# in a thread that may use the database. The receiver writes all rows or raises.
socket_audit = Signal()

# Rows in one transaction at most. Larger batches connect no faster, and the peak of
# building hundreds of rows at once, while sockets keep connecting, stays in the process's
# memory afterwards (500: +4.5 MB per 1,000 sockets connected; 20: none measurable).
MAX_BATCH = 20
# Background rows are written once no new one has come for FLUSH_DELAY seconds, or once
# the first has waited FLUSH_AT_MOST (a reconnect storm is not slowed by writing its rows
# while it lasts: writing them takes the interpreter from the connects); SESSION_BATCH
# rows in one transaction; at most MAX_PENDING waiting (the database being down): beyond,
# new rows are dropped and counted, never held without bound.
FLUSH_DELAY = 0.5
FLUSH_AT_MOST = 10.0
SESSION_BATCH = 50
MAX_PENDING = 50_000


@dataclass(frozen=True, slots=True)
class SocketAuditRow:
    """One audit row of a socket, with all the audit log needs and no model."""

    action: str
    user_id: int | None  # None: anonymous (a failed authentication)
    username: str
    details: dict
    ip: str | None
    user_agent: str
    target_id: str


def row_for(action, principal, details, scope):
    """The row of `action` by `principal` (a `Principal` or None) on the socket `scope`."""
    return SocketAuditRow(
        action=action,
        user_id=principal.user_id if principal is not None else None,
        username=principal.username if principal is not None else "",
        details=details,
        ip=scope_address(scope),
        user_agent=scope_user_agent(scope),
        target_id=str(details.get("client_id") or "")[:64],
    )


def send_rows(rows, *, live):
    """Hand rows to the audit log (sync: the receiver writes to the database)."""
    socket_audit.send(sender=SocketAuditRow, rows=rows, live=live)


class AuditWriter:
    """The group commit of one event loop's awaited rows."""

    def __init__(self):
        self._waiting = []  # (row, future) not yet being written
        self._writer = None

    async def write(self, action, principal, details, scope):
        """Write one row; returns once it is committed (raises if it could not be)."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((row_for(action, principal, details, scope), done))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_waiting())
        await done

    async def _write_waiting(self):
        try:
            while self._waiting:
                batch = self._waiting[:MAX_BATCH]
                self._waiting = self._waiting[MAX_BATCH:]
                try:
                    await database_sync_to_async(send_rows)([row for row, _ in batch], live=True)
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


class SessionAuditWriter:
    """One event loop's background rows: collected, written in batches, not published."""

    def __init__(self):
        self._pending = []
        self._flusher = None
        self._last_added = 0.0
        self.dropped = 0

    @property
    def pending(self):
        return len(self._pending)

    def add(self, action, principal, details, scope):
        """Queue one row (never waits; a full queue drops it, with a warning)."""
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                logger.warning("socket audit rows dropped: %d waiting already", MAX_PENDING)
            return
        self._pending.append(row_for(action, principal, details, scope))
        loop = asyncio.get_running_loop()
        self._last_added = loop.time()
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush_later())

    async def _flush_later(self):
        """Wait for a pause in the rows (FLUSH_DELAY), at most FLUSH_AT_MOST, then write."""
        loop = asyncio.get_running_loop()
        try:
            deadline = loop.time() + FLUSH_AT_MOST
            while (delay := min(self._last_added + FLUSH_DELAY, deadline) - loop.time()) > 0:
                await asyncio.sleep(delay)
            await self.flush()
        finally:
            self._flusher = None

    async def flush(self):
        """Write every queued row now (a batch that fails is logged and not retried)."""
        while self._pending:
            batch = self._pending[:SESSION_BATCH]
            del self._pending[:SESSION_BATCH]
            try:
                await database_sync_to_async(send_rows)(batch, live=False)
            except Exception:
                logger.exception("could not write %d socket audit rows", len(batch))


_writers = {}
_session_writers = {}


def _of_running_loop(registry, factory):
    loop = asyncio.get_running_loop()
    found = registry.get(loop)
    if found is None:
        for old_loop in [old for old in registry if old.is_closed()]:
            del registry[old_loop]
        found = registry[loop] = factory()
    return found


def writer():
    """The running event loop's group commit of awaited rows."""
    return _of_running_loop(_writers, AuditWriter)


def session_writer():
    """The running event loop's background rows."""
    return _of_running_loop(_session_writers, SessionAuditWriter)


async def flush_all():
    """Write the running event loop's background rows now (shutdown, tests)."""
    found = _session_writers.get(asyncio.get_running_loop())
    if found is not None:
        await found.flush()
