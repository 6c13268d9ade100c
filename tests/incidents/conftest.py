"""Fixtures for incident response: more personas and an alert factory (helpers that are
not fixtures live in `tests/incidents/helpers.py`)."""

import pytest
from django.contrib.auth.models import Permission

from incidents import services
from tests.incidents.helpers import new_alert


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


@pytest.fixture
def make_alert(db):
    """make_alert(**overrides) -> a new Alert, written directly as setup (no service, no
    audit, no event), so that tests see only the events of what they do."""
    return new_alert


@pytest.fixture
def take(make_alert):
    """take(user, **alert_overrides) -> (alert, new_incident) for a fresh alert."""

    def do(user, **overrides):
        alert = make_alert(**overrides)
        return services.take_alert_ownership(alert.pk, actor=user)

    return do
