"""Fixtures for incident response: more personas, an alert factory, published events."""

import pytest
from django.contrib.auth.models import Permission
from django.test import TestCase

from incidents import services
from incidents.models import Alert, Severity
from realtime.models import Event


@pytest.fixture
def dave(make_user):
    """A second analyst, to race and clash with alice."""
    return make_user("dave", role="analyst")


@pytest.fixture
def integration(make_user):
    """An integration account: may publish events and raise alerts, nothing else."""
    user = make_user("siem-bridge")
    user.user_permissions.add(
        Permission.objects.get(codename="publish_event", content_type__app_label="realtime"),
        Permission.objects.get(codename="add_alert", content_type__app_label="incidents"),
    )
    return user


def grant(user, *codenames):
    """Give `user` extra incidents permissions (and forget the cached ones)."""
    for codename in codenames:
        app_label, _, name = codename.rpartition(".")
        user.user_permissions.add(
            Permission.objects.get(codename=name, content_type__app_label=app_label or "incidents")
        )
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(cache, None)
    return user


@pytest.fixture
def make_alert(db):
    """make_alert(**overrides) -> a new Alert, saved directly (no service, no audit).

    Setup, not the thing under test: its `new_alert` is published and then discarded, so
    that tests see only the events of what they do."""
    counter = iter(range(1, 10_000))

    def make(**overrides):
        n = next(counter)
        fields = {
            "title": f"Suspicious activity {n}",
            "description": "Something happened.",
            "severity": Severity.HIGH,
            "source": "pipeline",
            "category": "brute_force",
            "source_ip": "203.0.113.7",
            "correlation_key": f"key-{n}",
        }
        fields.update(overrides)
        with TestCase.captureOnCommitCallbacks(execute=True):
            alert = Alert.objects.create(**fields)
        Event.objects.filter(object_key=f"alert:{alert.pk}").delete()
        return alert

    return make


@pytest.fixture
def take(make_alert):
    """take(user, **alert_overrides) -> (alert, new_incident) for a fresh alert."""

    def do(user, **overrides):
        alert = make_alert(**overrides)
        return services.take_alert_ownership(alert.pk, actor=user)

    return do


def events(event_type=None):
    """Published events (realtime.Event rows), oldest first, optionally of one type."""
    qs = Event.objects.exclude(event_type="user_action").order_by("id")
    if event_type:
        qs = qs.filter(event_type=event_type)
    return list(qs)
