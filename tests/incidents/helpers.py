"""Helpers for incident-response tests: permissions, published events, and rows written
directly as test setup (the models refuse a plain save outside the services)."""

from itertools import count

from django.contrib.auth.models import Permission

from incidents.models import Alert, Incident, Severity
from realtime.models import Event
from threatlens.writeguard import service_writes

_numbers = count(1)


def grant(user, *codenames):
    """Give `user` extra incidents permissions; returns the user read again from the
    database, to be used from then on: Django's ModelBackend caches permissions on the
    instance it checked, and a fresh instance is its documented way to see new ones."""
    for codename in codenames:
        app_label, _, name = codename.rpartition(".")
        user.user_permissions.add(
            Permission.objects.get(codename=name, content_type__app_label=app_label or "incidents")
        )
    return type(user).objects.get(pk=user.pk)


def events(event_type=None):
    """Published events (realtime.Event rows), oldest first, optionally of one type."""
    qs = Event.objects.exclude(event_type="user_action").order_by("id")
    if event_type:
        qs = qs.filter(event_type=event_type)
    return list(qs)


def new_alert(**overrides):
    """A new Alert row, written directly as setup: no service, no audit, no event."""
    n = next(_numbers)
    fields = {
        "title": f"Suspicious activity {n}",
        "description": "Something happened.",
        "severity": Severity.HIGH,
        "source": "pipeline",
        "category": "brute_force",
        "source_ip": "203.0.113.7",
        "correlation_key": f"key-{n}",
    }
    with service_writes():
        return Alert.objects.create(**(fields | overrides))


def new_incident(**fields):
    """A new Incident row, written directly as setup: no service, no audit, no event."""
    with service_writes():
        return Incident.objects.create(**fields)
