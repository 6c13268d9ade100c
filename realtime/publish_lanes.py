"""The threads that store the publish fast path's groups of events (`realtime.fast_publish`).

A group used to take a database connection from the pool and give it back each time: on
PostgreSQL taking it is a round trip of its own before the group's INSERT (the pool
checks the connection it hands out, CONN_HEALTH_CHECKS). A lane is a thread that keeps
its connection while groups follow each other, so that a group of one event is one round
trip (`realtime.publishing` stores it in one autocommit statement), and gives it back
once it has had no group for `IDLE` seconds, once it has kept it for `HOLD_AT_MOST`
seconds (a steady stream of groups would otherwise keep one connection for good, out of
reach of the pool's checks and lifetime), or when the connection saw an error (a fresh,
checked one comes from the pool for the next group).
Several lanes may store groups at once (`PUBLISH_COMMITS_IN_FLIGHT`, 1 by default:
PostgreSQL would share a log flush between overlapping commits, but their groups' ids
interleave and reach the hubs out of id order).
"""

import asyncio
import concurrent.futures
import contextvars
import logging
import queue
import threading
import time

from django.db import connection, connections

logger = logging.getLogger(__name__)

# Seconds a lane keeps its database connection after its last group: long enough for a
# burst's groups (milliseconds apart), short enough to give it back when publishing stops.
IDLE = 0.5
# Seconds a lane keeps one connection at most, however often groups come.
HOLD_AT_MOST = 60.0


class Lane:
    """One thread that runs `work(items)` for groups handed to it, one at a time, with a
    database connection kept between groups."""

    def __init__(self, work, name):
        self._work = work
        self._jobs = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def run(self, items):
        """An awaitable of `work(items)` run in this lane's thread in the caller's context
        (the context variables of `realtime.transport.sends_held` included)."""
        future = concurrent.futures.Future()
        self._jobs.put((contextvars.copy_context(), items, future))
        return asyncio.wrap_future(future)

    def _run(self):
        held_since = None  # when the connection kept since the last group was taken
        while True:
            try:
                context, items, future = self._jobs.get(
                    timeout=None if held_since is None else IDLE
                )
            except queue.Empty:
                _give_back()
                held_since = None
                continue
            if not future.set_running_or_notify_cancel():
                continue
            if held_since is None:
                held_since = time.monotonic()
            try:
                future.set_result(context.run(self._work, items))
            except BaseException as exc:
                future.set_exception(exc)
            # Lost, or a statement failed: the next group gets a fresh (checked) one; so
            # does the first group after HOLD_AT_MOST.
            if connection.errors_occurred or time.monotonic() - held_since > HOLD_AT_MOST:
                _give_back()
                held_since = None


def _give_back():
    """Close this thread's database connections: on PostgreSQL they go back to the pool
    (which drops a broken one); on SQLite the next group opens the file again."""
    try:
        connections.close_all()
    except Exception:
        logger.exception("giving back a publishing thread's database connection failed")


class Lanes:
    """`count` lanes, made on first use."""

    def __init__(self, work, name):
        self._work = work
        self._name = name
        self._lock = threading.Lock()
        self._lanes = []

    def get(self, count):
        with self._lock:
            while len(self._lanes) < count:
                self._lanes.append(Lane(self._work, f"{self._name}-{len(self._lanes)}"))
            return self._lanes[:count]
