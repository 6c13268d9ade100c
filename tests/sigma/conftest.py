"""Sigma fixtures: a fresh engine for each test (rule YAML factories: tests/sigma/helpers.py)."""

import pytest

from incidents.sigma import runtime


@pytest.fixture(autouse=True)
def _fresh_sigma_engine(settings):
    """No engine built in one test serves the next (or another test module)."""
    settings.SIGMA_RELOAD_SECONDS = 0
    runtime.forget_engine()
    runtime._engine = None
    yield
    runtime.forget_engine()
    runtime._engine = None
