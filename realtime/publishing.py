"""The one entry point for events: `publish_on_commit` (and `publish` for committed data).

The path of one event (DESIGN.md): the event is stored (its row id is the message_id and
serves replay), its payload is encoded once, and it is sent ONCE to the channel layer, to
the group of its event type. Every server process's hub is the only member of those
groups, receives it once and fans it out to its own connections.
"""

import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connections, router, transaction

from realtime import catalogue, envelopes, groups
from realtime.catalogue import Audience
from realtime.group_commit import GroupCommit, store_each
from realtime.models import Event
from realtime.transport import ORIGIN, layer_message, send_to_hubs, wake_table_pollers
from realtime.write_lock import when_unlocked

logger = logging.getLogger(__name__)


class PublishError(ValueError):
    """The event does not fit its catalogue entry; nothing was stored or sent."""


@dataclass(frozen=True)
class Recipients:
    """Who may receive a LISTED or USER event (besides users with the see-all permission)."""

    users: frozenset = frozenset()
    groups: frozenset = frozenset()

    @classmethod
    def user(cls, user_or_id):
        return cls(users=frozenset({getattr(user_or_id, "pk", user_or_id)}))


def publish(event_type, data, *, priority=None, recipients=None):
    """Store and broadcast one event now. Returns the stored `Event`.

    Call it after the data it describes is committed; from code that writes, use
    `publish_on_commit` so that a rolled-back transaction publishes nothing. Outside a
    transaction, events published at the same time by other threads are stored with this
    one in one INSERT and one commit (`realtime.group_commit`); it returns once its own
    is committed, and raises what storing its own raised.
    """
    event, data_json = _unsaved(event_type, data, priority, recipients)
    _stored_together.store(event)
    _send(event, data_json)
    wake_table_pollers()
    return event


def publish_each(items):
    """Publish `(event_type, data, options)` items, each on its own: all stored in one
    INSERT and one commit, or, when the database refuses the data (IntegrityError,
    DataError), each alone, so that an item that cannot be stored fails alone (any other
    failure fails them all). Returns per item its `Event` or the exception it raised (a
    `PublishError` for an item that does not fit its catalogue entry). Not inside a
    transaction: each stored event is sent at once."""
    outcomes = [None] * len(items)
    unsaved = []  # (index, event, data_json)
    for index, (event_type, data, options) in enumerate(items):
        try:
            unsaved.append((index, *_unsaved(event_type, data, **options)))
        except PublishError as exc:
            outcomes[index] = exc
    errors = store_each([event for _, event, _ in unsaved], _store_many, _store_one)
    for (index, event, data_json), error in zip(unsaved, errors, strict=True):
        outcomes[index] = event if error is None else error
        if error is None:
            _send(event, data_json)
    return outcomes


def _store_many(events):
    """Store `events` in one statement where one takes them (else bulk_create's batches
    in its transaction), waiting for SQLite's write lock in short steps. The statement
    is built once, whatever the wait."""
    if not events:
        return
    if len(events) == 1:
        # One statement in autocommit: PostgreSQL commits it before it answers, in one
        # round trip, where bulk_create's transaction takes three (BEGIN, INSERT, COMMIT).
        _store_one(events[0])
        return
    insert = _OneStatementInsert.of(events)
    if insert is None:
        when_unlocked(lambda: Event.objects.bulk_create(events))
    else:
        when_unlocked(insert.execute)


class _OneStatementInsert:
    """bulk_create's INSERT ... RETURNING id, without the transaction bulk_create opens
    around it: one statement is atomic by itself and, outside a transaction, committed
    before the database answers (one round trip instead of three). Inside the caller's
    transaction it is part of it, as bulk_create's INSERT would be."""

    def __init__(self, connection, events, sql, params):
        self.connection = connection
        self.events = events
        self.sql = sql
        self.params = params

    @classmethod
    def of(cls, events):
        """The statement for `events`, or None when one statement cannot take them all
        (a database without INSERT ... RETURNING, SQLite's parameter limit)."""
        connection = connections[router.db_for_write(Event)]
        meta = Event._meta
        fields = [field for field in meta.concrete_fields if field is not meta.pk]
        if not connection.features.can_return_rows_from_bulk_insert or len(
            events
        ) > connection.ops.bulk_batch_size(fields, events):
            return None
        quote = connection.ops.quote_name
        params = []
        for event in events:
            params.extend(
                field.get_db_prep_save(field.pre_save(event, True), connection) for field in fields
            )
        values = connection.ops.bulk_insert_sql(fields, [["%s"] * len(fields)] * len(events))
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
            f"{values} RETURNING {quote(meta.pk.column)}"
        )
        return cls(connection, events, sql, params)

    def execute(self):
        with self.connection.cursor() as cursor:
            cursor.execute(self.sql, self.params)
            ids = [row[0] for row in cursor.fetchall()]
        for event, pk in zip(self.events, ids, strict=True):
            event.pk = pk


def _store_one(event):
    when_unlocked(lambda: event.save(force_insert=True))


# Concurrent `publish` calls of this process (one-event REST requests) share a commit.
_stored_together = GroupCommit(store_many=_store_many, store_one=_store_one)


def publish_many(items):
    """Store several events in one INSERT, then broadcast each; `items` are
    `(event_type, data)` pairs or `(event_type, data, options)` with `publish`'s keyword
    arguments. All are checked first: one bad item publishes none. Returns the `Event`s."""
    unsaved = [_unsaved(item[0], item[1], **(item[2] if len(item) > 2 else {})) for item in items]
    events = [event for event, _ in unsaved]
    _store_many(events)
    for event, (_, data_json) in zip(events, unsaved, strict=True):
        _send(event, data_json)
    wake_table_pollers()
    return events


def publish_on_commit(event_type, data, *, merge_key=None, merge=None, using=None, **options):
    """Publish once the current transaction commits (at once outside a transaction).

    The event is checked against the catalogue now, so a bad call fails where it is made.
    It joins the transaction's buffer: every event of one commit goes out in ONE INSERT
    (`publish_many`). Events of one type with the same `merge_key` (e.g. a record's id)
    are published once, where the first was, with the last one's data (or
    `merge(earlier_data, later_data)`) and priority, and every recipient named.
    """
    _check(event_type, data, options.get("priority"), options.get("recipients"))
    _buffer_item(Publication(event_type, data, options, merge_key, merge), using)


def publish_many_on_commit(items, *, using=None):
    """`publish_on_commit` for `(event_type, data)` / `(event_type, data, options)` items
    (`options` may hold a `merge_key`); checked now, all in the transaction's one INSERT."""
    publications = []
    for item in items:
        options = dict(item[2]) if len(item) > 2 else {}
        merge_key = options.pop("merge_key", None)
        _check(item[0], item[1], options.get("priority"), options.get("recipients"))
        publications.append(Publication(item[0], item[1], options, merge_key))
    if publications:
        _buffer_item(publications, using)


def build_on_commit(change, *, using=None):
    """Publish what `change` (a `CommittedChange`) builds, once the transaction commits.

    For events built from the committed rows rather than from the caller's objects:
    changes with the same class and `key` in one transaction are merged
    (`change.merge(later)`) and built once, after the commit, all of a class together.
    """
    _buffer_item(change, using)


def build_many_on_commit(changes, *, using=None):
    """`build_on_commit` for several changes (one registration for all)."""
    changes = list(changes)
    if changes:
        _buffer_item(changes, using)


class CommittedChange:
    """Something that changed in a transaction, published after the commit from the
    committed state. Subclasses set `key` (which object) and implement `build`."""

    key = None

    def merge(self, later):
        """The one change standing for `self` followed by `later` (same class and key)."""
        return later

    @classmethod
    def build(cls, changes):
        """`{change.key: [(event_type, data, options), ...]}` for the merged `changes`, in
        one go (load all the rows at once). A key left out publishes nothing (the row
        is gone)."""
        raise NotImplementedError

    @classmethod
    def after_publish(cls, changes):
        """Runs once the built events are published (e.g. control messages)."""


@dataclass(frozen=True)
class Publication:
    """One checked event waiting for its commit."""

    event_type: str
    data: dict
    options: dict
    merge_key: object = None
    merge: Callable | None = None

    def merged(self, later):
        options = dict(later.options)
        mine, theirs = self.options.get("recipients"), later.options.get("recipients")
        if mine is not None and theirs is not None:
            options["recipients"] = Recipients(
                users=mine.users | theirs.users, groups=mine.groups | theirs.groups
            )
        data = later.data if self.merge is None else self.merge(self.data, later.data)
        return Publication(self.event_type, data, options, self.merge_key, self.merge)

    def as_item(self):
        return (self.event_type, self.data, self.options)


# --- The per-transaction buffer --------------------------------------------------------------
#
# Each `*_on_commit` call registers one small `_Pending` with Django's public
# `transaction.on_commit`, inside whatever savepoint is current. Django discards it if that
# savepoint (or the transaction) rolls back, and runs the survivors in order after the
# commit. The buffer holds the registered ones by weak reference only, so a discarded one
# disappears from it at once; one that ran is kept until the flush. When the last one
# alive has run, every event of the commit is known, and they go out in one
# `publish_many`. Nothing reads Django's private list of callbacks or of savepoints.

_buffers = weakref.WeakKeyDictionary()  # database connection -> _Buffer


class _Pending:
    """One `*_on_commit` call: its items, waiting for their transaction's commit."""

    __slots__ = ("buffer", "items", "ran", "__weakref__")

    def __init__(self, buffer, items):
        self.buffer = buffer
        self.items = items
        self.ran = False

    def __call__(self):
        self.ran = True
        self.buffer.ran(self)


class _Buffer:
    """The events registered on one database connection and not yet published."""

    def __init__(self):
        self.registered = []  # weak references to _Pending, in registration order
        self.committed = []  # the _Pending that ran, until the flush
        self.prune_at = 64

    def add(self, items, using):
        pending = _Pending(self, items)
        if len(self.registered) >= self.prune_at:
            # Transactions that rolled back leave dead references behind.
            self._prune()
            self.prune_at = max(64, 2 * len(self.registered))
        self.registered.append(weakref.ref(pending))
        # robust: after the commit the write stands; a failing publish is logged
        # (in `_flush`), never raised into the code that committed.
        transaction.on_commit(pending, using=using, robust=True)

    def ran(self, pending):
        self.committed.append(pending)
        # Django runs the callbacks in registration order: while one registered after
        # this one is still alive and waiting, the commit has more to say.
        for ref in reversed(self.registered):
            other = ref()
            if other is pending:
                break
            if other is not None and not other.ran:
                return
        due, self.committed = self.committed, []
        self._prune()
        _flush([item for entry in due for item in entry.items])

    def _prune(self):
        self.registered = [
            ref for ref in self.registered if (entry := ref()) is not None and not entry.ran
        ]


def _buffer_item(item, using):
    connection = transaction.get_connection(using)
    buffer = _buffers.get(connection)
    if buffer is None:
        buffer = _buffers[connection] = _Buffer()
    buffer.add(item if isinstance(item, list) else [item], using)


def _flush(entries):
    """Merge the committed transaction's entries and publish them in one INSERT."""
    slots = {}  # merge key (or a unique token) -> Publication or CommittedChange
    for entry in entries:
        if isinstance(entry, Publication):
            key = (entry.event_type, entry.merge_key) if entry.merge_key is not None else object()
            earlier = slots.get(key)
            slots[key] = entry if earlier is None else earlier.merged(entry)
        else:
            key = (type(entry), entry.key)
            earlier = slots.get(key)
            slots[key] = entry if earlier is None else earlier.merge(entry)
    changes = {}  # CommittedChange class -> merged changes, in order
    for entry in slots.values():
        if isinstance(entry, CommittedChange):
            changes.setdefault(type(entry), []).append(entry)
    built = {}
    for change_class, members in changes.items():
        try:
            built[change_class] = change_class.build(members)
        except Exception:
            logger.exception("building %s events failed", change_class.__name__)
            built[change_class] = {}
    items = []
    for entry in slots.values():
        if isinstance(entry, Publication):
            items.append(entry.as_item())
        else:
            items.extend(built[type(entry)].get(entry.key, ()))
    if items:
        # After commit the write stands whatever happens here: a broken publish must not
        # turn a saved alert into a 500 for the caller. It is logged loudly instead.
        try:
            publish_many(items)
        except Exception:
            logger.exception("publishing %d events failed", len(items))
    for change_class, members in changes.items():
        try:
            change_class.after_publish(members)
        except Exception:
            logger.exception("after publishing %s events", change_class.__name__)


def _unsaved(event_type, data, priority=None, recipients=None):
    """The unsaved `Event` for a checked event, and its payload encoded once."""
    entry = _check(event_type, data, priority, recipients)
    priority = entry.priority if priority is None else priority
    data_json = envelopes.encode(data)
    event = Event(
        event_type=entry.name,
        priority=priority,
        data=envelopes.decode(data_json),
        origin=ORIGIN,
        recipient_users=sorted(recipients.users) if recipients else None,
        recipient_groups=sorted(recipients.groups) if recipients else None,
        category=_text_field(data, "category", 64),
        source=_text_field(data, "source", 128),
    )
    return event, data_json


def _send(event, data_json):
    send_to_hubs(groups.event_group(event.event_type), layer_message(event, data_json))


def _check(event_type, data, priority, recipients):
    try:
        entry = catalogue.get(event_type)
    except catalogue.UnknownEventType as exc:
        raise PublishError(str(exc)) from None
    if not isinstance(data, dict):
        raise PublishError(f"{event_type}: data must be an object")
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 10
    ):
        raise PublishError(f"{event_type}: priority must be an integer 1-10")
    if entry.audience is Audience.EVERYONE and recipients is not None:
        raise PublishError(f"{event_type} goes to everyone permitted; it takes no recipients")
    if entry.audience is not Audience.EVERYONE and recipients is None:
        raise PublishError(f"{event_type} needs recipients ({entry.audience} audience)")
    return entry


def _text_field(data, name, limit):
    value = data.get(name)
    return str(value)[:limit] if isinstance(value, str | int) else ""
