"""The `running_server` fixture: real servers for end-to-end tests (tests/e2e/live_server.py)."""

import pytest

from tests.e2e.live_server import LiveServer


@pytest.fixture
def running_server(transactional_db):
    servers = []

    def start(kind="daphne", *, count=1, server_args=(), **env):
        """One server, or `count` of them started side by side (a list); `server_args`: the
        server's own command-line options, `env`: the application's settings."""
        started = [LiveServer(kind, env, server_args=server_args).launch() for _ in range(count)]
        servers.extend(started)
        for server in started:
            server.wait_ready()
        return started[0] if count == 1 else started

    yield start
    for server in servers:
        server.stop()
