"""Replay after reconnect (DESIGN.md "Reconnect without loss").

A client that comes back with `?since=<message_id>`, or to the same `/ws/<client_id>`, is
sent what it missed that it would have received live: the same subscription, audience and
filter checks, within the replay window (time and count, both settings).
"""

from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from realtime import access, catalogue
from realtime.models import Event
from realtime.outgoing import OutgoingEvent
from realtime.transport import layer_message

CHUNK = 500


def missed_events(connection, since):
    """(events the connection missed after `since`, whether that is the whole gap).

    `complete` is False when the gap reaches past the window (older than the time window,
    pruned, or more than the maximum count): the client must then reload over REST.
    Sync: reads the event table.
    """
    close_old_connections()
    try:
        return _missed_events(connection, since)
    finally:
        close_old_connections()


def _missed_events(connection, since):
    window = settings.REALTIME["REPLAY_WINDOW"]
    limit = settings.REALTIME["REPLAY_MAX_EVENTS"]
    cutoff = timezone.now() - timedelta(seconds=window)
    complete = _gap_within_window(since, cutoff)
    if not connection.subscriptions:
        return [], complete
    rows = (
        Event.objects.filter(
            id__gt=since, created_at__gte=cutoff, event_type__in=connection.subscriptions
        )
        .order_by("id")
        .iterator(chunk_size=CHUNK)
    )
    events = []
    for row in rows:
        event = OutgoingEvent(layer_message(row), catalogue.get(row.event_type))
        if connection.wants(event):
            events.append(event)
    if len(events) > limit:
        # Keep the newest: the client reloads its state anyway, and a live feed shows
        # the most recent first.
        events = events[-limit:]
        complete = False
    return events, complete


def _gap_within_window(since, cutoff):
    bounds = Event.objects.order_by("id").values_list("id", flat=True)
    first = bounds.first()
    last = bounds.last()
    if first is None:
        return True
    if since > last:
        return False  # a position this server never handed out
    if since < first - 1:
        return False  # the events right after `since` were pruned
    return not Event.objects.filter(id__gt=since, created_at__lt=cutoff).exists()


def stored_events(principal, event_types, *, after=None, start=None, end=None, newest=None):
    """Stored events of `event_types` within the replay window that `principal` may see
    (the audience rule of each type, as live delivery applies it), oldest first.

    `after` (a message id), `start` and `end` (aware datetimes) narrow the range; `newest`
    keeps only the newest that many, else at most REPLAY_MAX_EVENTS from the oldest on.
    Backs the DNS frontends' `get_recent_events` and `start_replay`. Sync: reads the table.
    """
    close_old_connections()
    try:
        return _stored_events(principal, event_types, after, start, end, newest)
    finally:
        close_old_connections()


def _stored_events(principal, event_types, after, start, end, newest):
    most = settings.REALTIME["REPLAY_MAX_EVENTS"]
    limit = min(newest, most) if newest else most
    cutoff = timezone.now() - timedelta(seconds=settings.REALTIME["REPLAY_WINDOW"])
    # Only types the user may receive at all; the audience rule is checked per event.
    event_types = set(event_types) & access.receivable_types(principal)
    if not event_types:
        return []
    rows = Event.objects.filter(
        event_type__in=event_types, created_at__gte=max(cutoff, start) if start else cutoff
    )
    if after is not None:
        rows = rows.filter(id__gt=after)
    if end is not None:
        rows = rows.filter(created_at__lte=end)
    rows = rows.order_by("-id" if newest else "id").iterator(chunk_size=CHUNK)
    events = []
    for row in rows:
        entry = catalogue.get(row.event_type)
        event = OutgoingEvent(layer_message(row), entry)
        if access.in_audience(principal, entry, event.users, event.groups):
            events.append(event)
            if len(events) == limit:
                break
    if newest:
        events.reverse()
    return events
