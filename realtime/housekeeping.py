"""The hub's housekeeping: its heartbeat, and passes over its live sockets now and then.

One pass over every socket instead of a timer per socket: pings, an expired token, a
client that stopped reading, a session that ended, a user whose access changed. Each
class here names the loops the hub runs for it (`loops()`: task name -> coroutine).
"""

import asyncio
import logging
import time

from django.conf import settings
from django.db import close_old_connections

from realtime import access, clock, envelopes
from realtime.transport import ORIGIN

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 5
PING_SLICE = 500  # sockets pinged in one go
TOKEN_CHECK_INTERVAL = 1  # seconds between looks for expired tokens
STALL_CHECK_INTERVAL = 1  # seconds between looks for sockets that stopped reading


class Heartbeat:
    """Shares this process's `summary()` through the store, for the other processes'
    `/metrics` and `/ws/info`; a process that stops beating is forgotten there."""

    def __init__(self, store, summary):
        self.store = store
        self.summary = summary

    def loops(self):
        return {"hub-heartbeat": self._beat()}

    async def _beat(self):
        while True:
            try:
                await self.store.heartbeat(ORIGIN, self.summary())
            except Exception as exc:
                logger.debug("heartbeat failed: %s", exc)
            await asyncio.sleep(HEARTBEAT_INTERVAL)


class ClientPings:
    """The clients' keepalive: a `ping` frame to every socket each PING_INTERVAL.

    `connections` is the hub's {connection id: Connection}."""

    def __init__(self, connections):
        self.connections = connections

    def loops(self):
        return {"hub-ping": self._ping()}

    async def _ping(self):
        interval = settings.REALTIME["PING_INTERVAL"]
        while True:
            await asyncio.sleep(interval)
            frame = envelopes.encode({"type": "ping", "timestamp": envelopes.now_iso()})
            connections = list(self.connections.values())
            for start in range(0, len(connections), PING_SLICE):
                for connection in connections[start : start + PING_SLICE]:
                    connection.ping(frame)
                await asyncio.sleep(0)  # events go out between the slices


class ExpirySweep:
    """Closes the sockets whose token ran out and those whose client stopped reading.

    `connections` is the hub's {connection id: Connection}, `counters` its counters."""

    def __init__(self, connections, counters):
        self.connections = connections
        self.counters = counters

    def loops(self):
        return {
            "hub-token-expiry": self._expire_tokens(),
            "hub-stalled-sockets": self._close_stalled(),
        }

    async def _expire_tokens(self):
        """Sockets whose token ran out are told so (`session_expired`, then 1008) within
        TOKEN_CHECK_INTERVAL: one pass over all of them instead of a timer per socket."""
        while True:
            await asyncio.sleep(TOKEN_CHECK_INTERVAL)
            now = clock.now()
            for connection in list(self.connections.values()):
                owner = connection.owner
                expires_at = owner.token_expires_at if owner is not None else None
                if expires_at is not None and now >= expires_at:
                    owner.token_expires_at = None  # once
                    asyncio.get_running_loop().create_task(owner.token_expired())

    async def _close_stalled(self):
        """Sockets whose client stopped reading: a send that waited on the full buffer for
        longer than SEND_TIMEOUT closes the socket (counted). Its queue is bounded, but the
        socket, its buffers and its connection slot would otherwise be held for ever."""
        while True:
            await asyncio.sleep(STALL_CHECK_INTERVAL)
            limit = settings.REALTIME["SEND_TIMEOUT"]
            now = time.monotonic()
            for connection in list(self.connections.values()):
                owner = connection.owner
                if owner is not None and not owner.closing and connection.blocked_for(now) > limit:
                    self.counters["stalled_sockets_closed"] += 1
                    asyncio.get_running_loop().create_task(owner.send_stalled())


class AccessCheck:
    """Checks the sockets' users and sessions against the database, and closes the sockets
    of a session that was logged out.

    `connections` is the hub's {connection id: Connection}, `counters` its counters,
    `run_db` runs sync database code in the hub's own thread."""

    def __init__(self, connections, counters, run_db):
        self.connections = connections
        self.counters = counters
        self.run_db = run_db

    def loops(self):
        return {"hub-access-check": self._check_access()}

    async def _check_access(self):
        """Every ACCESS_CHECK_INTERVAL, the sockets' users and sessions against the
        database: change notices reach only the processes the channel layer reaches, and
        not while it is down. A stamp that changed gets the socket's principal re-read
        (a deactivated user's socket closes); a session that ended closes its sockets."""
        while True:
            await asyncio.sleep(settings.REALTIME["ACCESS_CHECK_INTERVAL"])
            try:
                await self.check_access()
            except Exception as exc:
                logger.warning("could not check the sockets' access: %s", exc)

    async def check_access(self):
        connections = [c for c in self.connections.values() if c.owner is not None]
        if not connections:
            return
        user_ids = {connection.principal.user_id for connection in connections}
        sessions = {
            connection.owner.session_key
            for connection in connections
            if connection.owner.session_key
        }
        stamps, ended = await self.run_db(_access_state, user_ids, sessions)
        loop = asyncio.get_running_loop()
        for connection in connections:
            owner = connection.owner
            if connection.closed or owner.closing:
                continue
            session_key = owner.session_key
            if session_key and session_key in ended:
                self.counters["sessions_ended"] += 1
                loop.create_task(owner.session_ended())
            elif stamps.get(connection.principal.user_id) != connection.principal.stamp:
                access.forget(connection.principal.user_id)
                if not owner.rechecking:
                    self.counters["access_rechecks"] += 1
                    loop.create_task(owner.access_changed())

    def end_session(self, session_hash):
        """Close the sockets of a session that was logged out (by its key's digest)."""
        if not session_hash:
            return
        loop = asyncio.get_running_loop()
        for connection in list(self.connections.values()):
            owner = connection.owner
            if owner is not None and owner.session_hash == session_hash:
                loop.create_task(owner.session_ended())


def _access_state(user_ids, session_keys):
    """({user id: access stamp}, the session keys no longer valid) (hub thread)."""
    close_old_connections()
    stamps = access.access_stamps(user_ids)
    ended = {key for key in session_keys if not _session_valid(key)}
    return stamps, ended


def _session_valid(session_key):
    """Whether a session still logs its user in, as a request with it would: not logged
    out, not expired, its user active and its password unchanged."""
    from importlib import import_module
    from types import SimpleNamespace

    from django.contrib.auth import get_user

    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(SimpleNamespace(session=session))
    return user.is_authenticated and user.is_active
