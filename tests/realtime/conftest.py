"""Socket tests of the hub run with a fresh hub each (see tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _each_test_with_a_fresh_hub(fresh_hub):
    yield
