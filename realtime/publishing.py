"""The one entry point for events: `publish` and `publish_on_commit`.

The path of one event (DESIGN.md): the event is stored (its row id is the message_id and
serves replay), its payload is encoded once, and it is sent ONCE to the channel layer, to
the group of its event type. Every server process's hub is the only member of those
groups, receives it once and fans it out to its own connections.
"""

import logging
from dataclasses import dataclass
from functools import partial

from django.db import transaction

from realtime import catalogue, envelopes, groups
from realtime.catalogue import Audience
from realtime.models import Event
from realtime.transport import ORIGIN, layer_message, send_to_hubs

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


def publish(event_type, data, *, priority=None, recipients=None, object_key=""):
    """Store and broadcast one event now. Returns the stored `Event`.

    Call it after the data it describes is committed; from code that writes, use
    `publish_on_commit` so that a rolled-back transaction publishes nothing.
    """
    event, data_json = _unsaved(event_type, data, priority, recipients, object_key)
    event.save()
    _send(event, data_json)
    return event


def publish_many(items):
    """Store several events in one INSERT, then broadcast each; `items` are
    `(event_type, data)` pairs or `(event_type, data, options)` with `publish`'s keyword
    arguments. All are checked first: one bad item publishes none. Returns the `Event`s."""
    unsaved = [_unsaved(item[0], item[1], **(item[2] if len(item) > 2 else {})) for item in items]
    events = Event.objects.bulk_create([event for event, _ in unsaved])
    for event, (_, data_json) in zip(events, unsaved, strict=True):
        _send(event, data_json)
    return events


def publish_on_commit(event_type, data, **options):
    """Publish once the current transaction commits (at once outside a transaction).

    The event is checked against the catalogue now, so a bad call fails where it is made.
    """
    _check(event_type, data, options.get("priority"), options.get("recipients"))
    transaction.on_commit(partial(_publish_logged, event_type, data, **options))


def publish_many_on_commit(items):
    """`publish_many` once the current transaction commits; checked now."""
    for item in items:
        options = item[2] if len(item) > 2 else {}
        _check(item[0], item[1], options.get("priority"), options.get("recipients"))
    transaction.on_commit(partial(_publish_many_logged, items))


def _publish_logged(event_type, data, **options):
    # After commit the write stands whatever happens here: a broken publish must not
    # turn a saved alert into a 500 for the caller. It is logged loudly instead.
    try:
        publish(event_type, data, **options)
    except Exception:
        logger.exception("publishing %s failed", event_type)


def _publish_many_logged(items):
    try:
        publish_many(items)
    except Exception:
        logger.exception("publishing %d events failed", len(items))


def _unsaved(event_type, data, priority=None, recipients=None, object_key=""):
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
        object_key=object_key[:64],
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
