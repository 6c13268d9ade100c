"""The `running_server` fixture: real servers for end-to-end tests (tests/e2e/live_server.py)."""

import pytest

from tests.e2e.live_server import LiveServer


@pytest.fixture
def running_server(transactional_db):
    servers = []

    def start(kind="daphne", *, count=1, **env):
        """One server, or `count` of them started side by side (a list)."""
        started = [LiveServer(kind, env).launch() for _ in range(count)]
        servers.extend(started)
        for server in started:
            server.wait_ready()
        return started[0] if count == 1 else started

    yield start
    for server in servers:
        server.stop()
