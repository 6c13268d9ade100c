"""Publishing alert and incident changes once they are committed.

Every save of an Alert or Incident (post_save, see `signals.py`) and every write that
bypasses `save()` (`bulk_create`, `queryset.update`: call `alerts_changed` /
`incidents_changed` yourself) lands here. The event is built after the commit, from the
row as committed, by the same serializers the REST API uses:

- clients never see a change that rolled back (nothing is published before the commit,
  and a rolled-back savepoint drops its pending events with it);
- an object saved several times in one transaction (an incident created, then given its
  first alert) is published once, with its final state: `incident_created` carrying its
  alert, not an empty incident followed by an `incident_updated`.
"""

import logging
from dataclasses import dataclass, field

from django.db import transaction

from incidents.models import Alert, Incident, Severity
from incidents.serializers import alert_payloads, incident_payload
from realtime.catalogue import PRIORITY_CRITICAL, PRIORITY_HIGH, PRIORITY_LOW, PRIORITY_MEDIUM
from realtime.publishing import Recipients, publish_many_on_commit, publish_on_commit

logger = logging.getLogger(__name__)

ALERT = "alert"
INCIDENT = "incident"

# A new alert or incident goes out at the priority of its severity.
PRIORITY_FOR_SEVERITY = {
    Severity.CRITICAL: PRIORITY_CRITICAL,
    Severity.HIGH: PRIORITY_HIGH,
    Severity.MEDIUM: PRIORITY_MEDIUM,
    Severity.LOW: PRIORITY_LOW,
}


def alert_changed(alert_id, *, created=False):
    """Publish `new_alert` (created) or `alert_updated` for this alert after commit."""
    _schedule(ALERT, alert_id, created=created)


def alerts_changed(alert_ids, *, created=False):
    """The same for many alerts (after `bulk_create` or `queryset.update`)."""
    for alert_id in alert_ids:
        _schedule(ALERT, alert_id, created=created)


def incident_changed(incident_id, *, created=False, also_notify=()):
    """Publish `incident_created` or `incident_updated` after commit. `also_notify`: user
    ids that should get this one event besides the usual recipients (a previous owner)."""
    _schedule(INCIDENT, incident_id, created=created, also_notify=also_notify)


def incidents_changed(incident_ids, *, created=False):
    for incident_id in incident_ids:
        _schedule(INCIDENT, incident_id, created=created)


def incident_recipients(incident, *, also=()):
    """Who receives an incident's events, besides users with `incidents.view_all_incidents`
    (the catalogue's see-all permission): its owner and its watchers. `incident` should come
    from `Incident.objects.for_payload()` with `watchers` prefetched, or this costs a query."""
    users = {watcher.user_id for watcher in incident.watchers.all()}
    if incident.owner_id is not None:
        users.add(incident.owner_id)
    users.update(also)
    return Recipients(users=frozenset(users))


@dataclass
class _Pending:
    created: bool = False
    also_notify: set = field(default_factory=set)


class PendingEvents:
    """The objects changed at one savepoint level of a transaction; registered with
    `on_commit`, it publishes them when the transaction commits."""

    def __init__(self):
        self.items = {}
        self.done = False

    def add(self, kind, pk, *, created, also_notify=()):
        pending = self.items.setdefault((kind, pk), _Pending())
        pending.created = pending.created or created
        pending.also_notify.update(also_notify)

    def __call__(self):
        self.done = True
        publish_committed(self.items)

    def __repr__(self):
        return f"<PendingEvents {sorted(self.items)}>"


def _schedule(kind, pk, *, created, also_notify=()):
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        # Autocommit: the row is already committed.
        publish_committed({(kind, pk): _Pending(created, set(also_notify))})
        return
    pending = _pending_for_current_savepoint(connection)
    if pending is None:
        pending = PendingEvents()
        # robust: after the commit the write stands; a failing publish is logged, not
        # raised into the caller (the same rule as realtime.publishing).
        transaction.on_commit(pending, robust=True)
    pending.add(kind, pk, created=created, also_notify=also_notify)


def _pending_for_current_savepoint(connection):
    # Reuse a batch only if it was registered at exactly the current savepoint level:
    # if this savepoint rolls back, Django drops the batch together with what we add now.
    # A batch from an outer level would survive that rollback with our item in it.
    current = set(connection.savepoint_ids)
    for savepoint_ids, callback, _robust in reversed(connection.run_on_commit):
        # (A batch that already ran can still be listed inside a test's transaction,
        # under `captureOnCommitCallbacks`.)
        if isinstance(callback, PendingEvents) and not callback.done and savepoint_ids == current:
            return callback
    return None


def publish_committed(items):
    """Publish one event per changed object, in the order they were first changed, with
    the objects' committed state (objects deleted meanwhile are skipped)."""
    alert_ids = [pk for kind, pk in items if kind == ALERT]
    incident_ids = [pk for kind, pk in items if kind == INCIDENT]
    alerts = Alert.objects.for_payload().in_bulk(alert_ids) if alert_ids else {}
    incidents = (
        Incident.objects.for_payload().prefetch_related("watchers").in_bulk(incident_ids)
        if incident_ids
        else {}
    )
    # The alerts' payloads from one list serializer (DRF builds a serializer's fields per
    # instance: once for the batch, not once per alert), published in one INSERT.
    changed = [pk for kind, pk in items if kind == ALERT and pk in alerts]
    payloads = dict(zip(changed, alert_payloads([alerts[pk] for pk in changed]), strict=True))
    batch = []
    for (kind, pk), pending in items.items():
        if kind == ALERT and pk in alerts:
            batch.append(_alert_event(alerts[pk], payloads[pk], created=pending.created))
        elif kind == INCIDENT and pk in incidents:
            if batch:
                publish_many_on_commit(batch)
                batch = []
            _publish_incident(
                incidents[pk], created=pending.created, also_notify=pending.also_notify
            )
    if batch:
        publish_many_on_commit(batch)


def _alert_event(alert, payload, *, created):
    return (
        "new_alert" if created else "alert_updated",
        payload,
        {
            "priority": PRIORITY_FOR_SEVERITY.get(alert.severity) if created else None,
            "object_key": f"alert:{alert.pk}",
        },
    )


def _publish_incident(incident, *, created, also_notify):
    publish_on_commit(
        "incident_created" if created else "incident_updated",
        incident_payload(incident),
        priority=PRIORITY_FOR_SEVERITY.get(incident.severity) if created else None,
        recipients=incident_recipients(incident, also=also_notify),
        object_key=f"incident:{incident.pk}",
    )
