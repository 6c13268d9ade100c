"""How the incidents services write: the one write path for alerts and incidents.

Alerts, incidents, their comments, timeline entries and watchers are guarded
(`threatlens.writeguard`, see `IncidentsConfig.ready()`): a plain `save()`/`delete()`
outside the services raises `DirectWrite`. A service runs in `@service` (one transaction,
inside `service_writes()`), saves an alert or incident with `save_alert` /
`save_incident`, which announce the change (`incidents.broadcast`, built after the
commit), and announces itself what it writes with `bulk_create` or `queryset.update`.
Nothing else publishes: there is no post_save receiver.
"""

import functools

from django.db import transaction

from incidents import broadcast
from threatlens.writeguard import service_writes


def service(func):
    """A service entry point: one transaction, allowed to write the guarded models."""

    @functools.wraps(func)
    def run(*args, **kwargs):
        with service_writes(), transaction.atomic():
            return func(*args, **kwargs)

    return run


def save_alert(alert, **save_options):
    """Save `alert` and publish `new_alert` / `alert_updated` for it after commit."""
    created = alert._state.adding
    with service_writes():
        alert.save(**save_options)
    broadcast.alert_changed(alert.pk, created=created)


def save_incident(incident, *, also_notify=(), **save_options):
    """Save `incident` and publish `incident_created` / `incident_updated` after commit;
    `also_notify`: user ids to tell besides its recipients (a previous owner)."""
    created = incident._state.adding
    with service_writes():
        incident.save(**save_options)
    broadcast.incident_changed(incident.pk, created=created, also_notify=also_notify)
