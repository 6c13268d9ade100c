"""DNS fixtures: zone and record factories (helpers that are not fixtures: helpers.py)."""

import pytest

from dns import services
from realtime.models import Event


@pytest.fixture
def dave(make_user):
    """A second analyst, with no access to anyone's zones unless granted."""
    return make_user("dave", role="analyst")


@pytest.fixture
def make_zone(db):
    """make_zone(**overrides) -> a master zone created by the system (no access rows).

    Setup, not the thing under test: the events of its creation are discarded."""
    counter = iter(range(1, 10_000))

    def make(**overrides):
        fields = {"name": f"zone{next(counter)}.example", "email": "hostmaster@example.com"}
        fields.update(overrides)
        zone = services.create_zone(None, fields)
        Event.objects.all().delete()
        return zone

    return make


@pytest.fixture
def make_record(db):
    """make_record(zone, **overrides) -> a record added by the system (events discarded)."""

    def make(zone, **overrides):
        fields = {"name": "www", "record_type": "A", "value": "192.0.2.10"}
        fields.update(overrides)
        record = services.create_record(None, zone.pk, fields)
        Event.objects.all().delete()
        return record

    return make
