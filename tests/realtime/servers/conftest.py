"""The fast paths are tested on, whatever REALTIME_FAST_PATHS says (make pytest-plain)."""

import pytest


@pytest.fixture(autouse=True)
def _every_fast_path_on(settings):
    settings.REALTIME_FAST_PATHS = ["all"]
