"""Side effects of incident-response saves, connected in `IncidentsConfig.ready()`.

Every save of an Alert or Incident, from any path (services, admin, `manage.py`, a shell),
is broadcast after commit. Writes that bypass `save()` call `incidents.broadcast` directly.
"""

from incidents import broadcast


def alert_saved(sender, instance, created, raw=False, **kwargs):
    if raw:  # loaddata restores rows; it is not a live change
        return
    broadcast.alert_changed(instance.pk, created=created)


def incident_saved(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    broadcast.incident_changed(instance.pk, created=created)
