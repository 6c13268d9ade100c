"""Group commit for events published one at a time: concurrent publishes of a process
share one INSERT and one commit.

A request that publishes one event (`POST /api/realtime/publish/`) used to pay for an
INSERT and a commit of its own, and on SQLite the concurrent ones queued for the write
lock. Here the first publisher to arrive becomes the *leader*: it stores its event, and
with it every event handed in by other threads while it was waiting its turn, in one
`bulk_create` (one statement, one commit). The others (*followers*) wait until their
event is committed, then go on with their own event as before: each gets its own saved
`Event` (its id) or its own exception. When the leader is done and more events have
arrived meanwhile, the first of their publishers is woken to lead the next group, so no
thread stores for others for longer than one commit.

Per-publisher semantics are kept: `store` returns only once the event is committed; a
publisher whose event is part of the caller's own transaction (inside `atomic`) is not
grouped at all (its row must commit or roll back with that transaction); and when a
group's INSERT is refused for its data (an IntegrityError or a DataError), each of its
events is tried again alone, so an event that cannot be stored fails only its own
publisher; any other failure (a lock or pool timeout, a lost connection) fails the whole
group at once, as trying each event alone would only wait that long again for each.
Events of one thread are stored in the order it hands them in (it waits for each), so one
client's sequential requests keep their order.
"""

import threading

from django.db import DataError, IntegrityError, transaction


class _Waiting:
    """One event handed in, and what became of it."""

    __slots__ = ("event", "error", "done", "leads", "woken")

    def __init__(self, event):
        self.event = event
        self.error = None
        self.done = False  # stored, or failed (error set)
        self.leads = False  # woken to lead the next group
        self.woken = threading.Event()

    def outcome(self):
        if self.error is not None:
            raise self.error
        return self.event


class GroupCommit:
    """Stores unsaved model instances handed in by concurrent threads, grouped.

    `store_many(instances)` stores a list in one INSERT and one commit (outside any
    transaction of the caller), setting each instance's primary key; `store_one(instance)`
    stores one alone (used to tell a group's bad instance from the good ones)."""

    def __init__(self, store_many, store_one):
        self._store_many = store_many
        self._store_one = store_one
        self._lock = threading.Lock()
        self._waiting = []  # handed in, not yet taken by a leader
        self._leading = False  # a leader is storing a group now
        self.groups_stored = 0  # groups stored since start (metrics, tests)

    @property
    def queued(self):
        """Events handed in and not yet taken into a group."""
        with self._lock:
            return len(self._waiting)

    def store(self, instance, using=None):
        """Store `instance` and return it saved; raises what storing it raised. Inside the
        caller's transaction it is saved there, alone."""
        if transaction.get_connection(using).in_atomic_block:
            self._store_one(instance)
            return instance
        waiting = _Waiting(instance)
        with self._lock:
            self._waiting.append(waiting)
            leads = not self._leading
            self._leading = True
        if not leads:
            waiting.woken.wait()
            leads = waiting.leads and not waiting.done
        if leads:
            self._lead()
        return waiting.outcome()

    def _lead(self):
        with self._lock:
            group, self._waiting = self._waiting, []
        try:
            self._store_group(group)
        finally:
            # Whatever happened, every publisher of the group hears of its event, and
            # the next group gets a leader (or there is none to lead).
            for waiting in group:
                if not waiting.done:
                    waiting.error = waiting.error or RuntimeError("the group was not stored")
                    waiting.done = True
            with self._lock:
                if self._waiting:
                    successor = self._waiting[0]
                    successor.leads = True
                    successor.woken.set()
                else:
                    self._leading = False
            for waiting in group:
                waiting.woken.set()

    def _store_group(self, group):
        errors = store_each([waiting.event for waiting in group], self._store_many, self._store_one)
        self.groups_stored += 1
        for waiting, error in zip(group, errors, strict=True):
            waiting.error = error
            waiting.done = True


def store_each(instances, store_many, store_one):
    """Store `instances` with one `store_many` call; if the data is refused (IntegrityError,
    DataError), each with `store_one`, so only those that cannot be stored fail; any other
    failure fails them all. Returns, per instance, None or the exception that storing it
    raised (each its own)."""
    try:
        store_many(instances)
        return [None] * len(instances)
    except (IntegrityError, DataError) as exc:
        if len(instances) == 1:
            return [exc]
    except Exception as exc:
        return each_its_own(exc, len(instances))
    errors = []
    for instance in instances:  # which one failed? each alone: the others are stored
        instance.pk = None
        try:
            store_one(instance)
            errors.append(None)
        except Exception as alone:
            errors.append(alone)
    return errors


def each_its_own(exc, count):
    """`exc` and count - 1 exceptions like it, one per publisher (one object raised by
    several publishers at once would share, and grow, one traceback)."""
    return [exc] + [_copy(exc) for _ in range(count - 1)]


def _copy(exc):
    try:
        copy = type(exc)(*exc.args)
    except Exception:
        return exc
    copy.__cause__ = exc.__cause__
    return copy
