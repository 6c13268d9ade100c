"""Pipeline fixtures: the detection state every rule test runs on, and `feed` (the line
builders and `Feed`: tests/pipeline/helpers.py)."""

import pytest

from incidents.pipeline.state import BoundedState, CacheState, MemoryState
from tests.pipeline.helpers import Feed


@pytest.fixture(params=["memory", "cache", "bounded"])
def state(request):
    """Every rule test runs on each state: in memory, in Django's cache (Redis in the
    pass against real services), and the bounded store ingest uses."""
    if request.param == "memory":
        return MemoryState()
    if request.param == "bounded":
        return BoundedState()
    return CacheState()


@pytest.fixture
def feed(state):
    return Feed(state)
