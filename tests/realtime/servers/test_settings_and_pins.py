"""Which fast paths are on: REALTIME_FAST_PATHS, and the versions constraints.txt pins."""

import logging
from importlib import metadata

import pytest
from django.core.exceptions import ImproperlyConfigured

from realtime import servers


@pytest.fixture(autouse=True)
def _fresh():
    servers.reset()
    yield
    servers.reset()


def test_every_fast_path_is_on_by_default_with_the_pinned_versions():
    assert all(servers.enabled(name) for name in servers.FAST_PATHS)


def test_the_running_versions_are_the_pinned_ones():
    pins = servers.pinned_versions()
    for distributions in servers.FAST_PATHS.values():
        for name in distributions:
            assert pins[servers._normalise(name)] == metadata.version(name)


def test_none_turns_every_fast_path_off(settings):
    settings.REALTIME_FAST_PATHS = ["none"]
    assert not any(servers.enabled(name) for name in servers.FAST_PATHS)


def test_a_list_turns_on_only_those(settings):
    settings.REALTIME_FAST_PATHS = ["uvicorn_writes", "daphne_close_codes"]
    on = {name for name in servers.FAST_PATHS if servers.enabled(name)}
    assert on == {"uvicorn_writes", "daphne_close_codes"}


def test_an_unknown_name_fails_loudly_naming_the_setting(settings):
    settings.REALTIME_FAST_PATHS = ["uvicorn_writes", "uvicron_writes"]
    with pytest.raises(ImproperlyConfigured, match="REALTIME_FAST_PATHS.*uvicron_writes"):
        servers.enabled("uvicorn_writes")


def test_a_library_at_another_version_turns_its_fast_paths_off_with_a_warning(
    settings, tmp_path, caplog
):
    pins = (settings.BASE_DIR / "constraints.txt").read_text()
    running = metadata.version("websockets")
    assert f"websockets=={running}\n" in pins
    changed = pins.replace(f"websockets=={running}", "websockets==0.1")
    (tmp_path / "constraints.txt").write_text(changed)
    settings.BASE_DIR = tmp_path
    with caplog.at_level(logging.WARNING, logger="realtime.servers"):
        assert not servers.enabled("uvicorn_writes")
        assert not servers.enabled("uvicorn_handshake")
        assert servers.enabled("daphne_writes")
    warnings = [r.getMessage() for r in caplog.records if "websockets" in r.getMessage()]
    assert len(warnings) == 1
    assert "constraints.txt pins 0.1" in warnings[0]


def test_without_constraints_every_fast_path_is_off(monkeypatch, settings, tmp_path, caplog):
    settings.BASE_DIR = tmp_path
    assert not servers.enabled("uvicorn_writes")
    assert "constraints.txt not readable" in caplog.text
