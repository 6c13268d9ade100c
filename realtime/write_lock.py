"""Waiting for SQLite's write lock in short steps, for the writes that subscribers wait on.

SQLite has one write lock per database. When another process holds it (the syslog
child storing a chunk, a `manage.py` command), a writer here waits in SQLite's busy
handler, which sleeps 1, 2, 5, 10, 15, 20, 25 ... ms between its tries: a lock held for
3 ms costs the waiter 8 ms, one held for 9 ms costs 18 ms. For an event being published,
whose subscribers count its latency in milliseconds, that schedule is most of the delay
(measured: docs/ingest.md, "Ingest in a child process").

`when_unlocked(fn)` runs `fn` (one whole transaction, called outside any other) with
SQLite's busy timeout at zero and, while the database is locked, tries again every
`STEP` seconds (every `LONG_STEP` once it has waited `SHORT_STEPS_FOR`: a lock held that
long is held by a long transaction, and a thread trying that often would keep the
interpreter lock from the event loop) until the connection's own timeout (DATABASES
OPTIONS "timeout") has passed; then the last "database is locked" is raised, as SQLite
would have raised it. `fn` should be cheap to call again: build the statement first.
Trying again is safe because `fn` is a whole transaction: a locked database refuses its
BEGIN IMMEDIATE, or rolls the transaction back whole. Other databases run `fn` as it is
(PostgreSQL has no database-wide write lock), and so does a call inside a transaction
(the lock is already held).
"""

import logging
import time

from django.db import DEFAULT_DB_ALIAS, OperationalError, connections

logger = logging.getLogger(__name__)

# Between tries: well under the child's usual transaction (about a millisecond), long
# enough not to keep a core busy while one runs.
STEP = 0.0003
SHORT_STEPS_FOR = 0.02
LONG_STEP = 0.002
DEFAULT_TIMEOUT = 5.0  # seconds: Python's sqlite3 default, when OPTIONS names none


def when_unlocked(fn, using=None):
    """`fn()`, tried again in short steps while SQLite's database is locked (see above)."""
    connection = connections[using or DEFAULT_DB_ALIAS]
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        return fn()
    timeout = float(connection.settings_dict.get("OPTIONS", {}).get("timeout", DEFAULT_TIMEOUT))
    connection.ensure_connection()
    _set_busy_timeout(connection, 0)
    try:
        started = time.monotonic()
        while True:
            try:
                return fn()
            except OperationalError as exc:
                waited = time.monotonic() - started
                if "database is locked" not in str(exc) or waited >= timeout:
                    raise
            time.sleep(STEP if waited < SHORT_STEPS_FOR else LONG_STEP)
    finally:
        try:
            _set_busy_timeout(connection, round(timeout * 1000))
        except Exception:
            # A connection that cannot say it is one that cannot be trusted: the next
            # query opens a new one, with the configured timeout.
            logger.warning("closing a database connection whose busy timeout was not restored")
            connection.close()


def _set_busy_timeout(connection, milliseconds):
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA busy_timeout = {int(milliseconds)}")
