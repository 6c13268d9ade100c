"""DNS test helpers (not fixtures): per-zone access written as setup, captured events,
fresh reads."""

from django.contrib.auth.models import Group

from dns import services
from dns.models import Record, Zone, ZoneAccess
from realtime.models import Event


def grant(zone, who, *, can_change=False):
    """Give a user or group access to a zone, directly (setup)."""
    key = "group" if isinstance(who, Group) else "user"
    access = ZoneAccess(zone=zone, can_change=can_change, **{key: who})
    with services.writing():
        access.save()
    return access


def events(event_type=None):
    queryset = Event.objects.order_by("id")
    if event_type:
        queryset = queryset.filter(event_type=event_type)
    return list(queryset)


def refreshed(zone):
    return Zone.objects.get(pk=zone.pk)


def record_count(zone):
    return Record.objects.filter(zone=zone).count()
