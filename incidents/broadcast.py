"""Publishing alert and incident changes once they are committed.

The services announce every alert or incident they write: a save through
`incidents.writes.save_alert` / `save_incident`, and a write that bypasses `save()`
(`bulk_create`, `queryset.update`: call `alerts_changed` / `incidents_changed` yourself)
lands here. Each change joins the transaction's buffer in
`realtime.publishing` (`build_on_commit`); the events are built after the commit, from
the rows as committed, by the builders of `incidents/events.py` (the REST serializers):

- clients never see a change that rolled back (nothing is published before the commit,
  and a rolled-back savepoint drops its changes with it);
- an object saved several times in one transaction (an incident created, then given its
  first alert) is published once, with its final state: `incident_created` carrying its
  alert, not an empty incident followed by an `incident_updated`.
"""

from dataclasses import dataclass

from incidents.events import incident_data
from incidents.models import Alert, Incident, Severity
from incidents.serializers import alert_payloads
from realtime.catalogue import PRIORITY_CRITICAL, PRIORITY_HIGH, PRIORITY_LOW, PRIORITY_MEDIUM
from realtime.publishing import (
    CommittedChange,
    Recipients,
    build_many_on_commit,
    build_on_commit,
)

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
    build_on_commit(AlertChanged(alert_id, created=created))


def alerts_changed(alert_ids, *, created=False):
    """The same for many alerts (after `bulk_create` or `queryset.update`)."""
    build_many_on_commit(AlertChanged(alert_id, created=created) for alert_id in alert_ids)


def incident_changed(incident_id, *, created=False, also_notify=()):
    """Publish `incident_created` or `incident_updated` after commit. `also_notify`: user
    ids that should get this one event besides the usual recipients (a previous owner)."""
    build_on_commit(
        IncidentChanged(incident_id, created=created, also_notify=frozenset(also_notify))
    )


def incidents_changed(incident_ids, *, created=False):
    build_many_on_commit(
        IncidentChanged(incident_id, created=created) for incident_id in incident_ids
    )


def incident_recipients(incident, *, also=()):
    """Who receives an incident's events, besides users with `incidents.view_all_incidents`
    (the catalogue's see-all permission): its owner and its watchers. `incident` should come
    from `Incident.objects.for_payload()` with `watchers` prefetched, or this costs a query."""
    users = {watcher.user_id for watcher in incident.watchers.all()}
    if incident.owner_id is not None:
        users.add(incident.owner_id)
    users.update(also)
    return Recipients(users=frozenset(users))


@dataclass(frozen=True)
class AlertChanged(CommittedChange):
    """An alert saved in the transaction; `created` if any save created it."""

    pk: int
    created: bool = False

    @property
    def key(self):
        return self.pk

    def merge(self, later):
        return AlertChanged(self.pk, created=self.created or later.created)

    @classmethod
    def build(cls, changes):
        # One query for the alerts and one list serializer for their payloads (DRF builds
        # a serializer's fields per instance: once for the batch, not once per alert).
        alerts = Alert.objects.for_payload().in_bulk([change.pk for change in changes])
        present = [change for change in changes if change.pk in alerts]
        payloads = alert_payloads([alerts[change.pk] for change in present])
        return {
            change.pk: [_alert_event(alerts[change.pk], payload, created=change.created)]
            for change, payload in zip(present, payloads, strict=True)
        }


@dataclass(frozen=True)
class IncidentChanged(CommittedChange):
    """An incident saved in the transaction, and users to tell besides its recipients."""

    pk: int
    created: bool = False
    also_notify: frozenset = frozenset()

    @property
    def key(self):
        return self.pk

    def merge(self, later):
        return IncidentChanged(
            self.pk,
            created=self.created or later.created,
            also_notify=self.also_notify | later.also_notify,
        )

    @classmethod
    def build(cls, changes):
        incidents = (
            Incident.objects.for_payload()
            .prefetch_related("watchers")
            .in_bulk([change.pk for change in changes])
        )
        return {
            change.pk: [_incident_event(incidents[change.pk], change)]
            for change in changes
            if change.pk in incidents
        }


def _alert_event(alert, payload, *, created):
    return (
        "new_alert" if created else "alert_updated",
        payload,
        {
            "priority": PRIORITY_FOR_SEVERITY.get(alert.severity) if created else None,
        },
    )


def _incident_event(incident, change):
    return (
        "incident_created" if change.created else "incident_updated",
        incident_data(incident),
        {
            "priority": PRIORITY_FOR_SEVERITY.get(incident.severity) if change.created else None,
            "recipients": incident_recipients(incident, also=change.also_notify),
        },
    )
