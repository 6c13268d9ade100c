"""Syslog fixtures: a recording sink, a receiver on free loopback ports and `manage.py
run_syslog` processes (helpers that are not fixtures: tests/syslog/helpers.py)."""

import os

import pytest
from django.conf import settings

from incidents.syslog.server import ReceiverConfig, SyslogReceiver
from tests.e2e.live_server import database_url
from tests.syslog.helpers import RecordingSink
from tests.syslog.processes import start_manage, stop_all


@pytest.fixture
def sink():
    return RecordingSink()


@pytest.fixture
async def start_receiver():
    """start_receiver(sink, **config) -> a started SyslogReceiver on free ports (0 for a
    port asks for one; ports left out are off); stopped at the end."""
    receivers = []

    async def start(sink, **config):
        receiver = SyslogReceiver(sink, ReceiverConfig(**config))
        await receiver.start()
        receivers.append(receiver)
        return receiver

    yield start
    for receiver in receivers:
        await receiver.stop()


@pytest.fixture
def run_syslog(transactional_db):
    """run_syslog(*args) -> a `manage.py run_syslog` process, listening; stopped at the end."""
    processes = []

    def start(*args, env=None):
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            # The run's Redis keys (its shared detection state, reset for each test).
            "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
            "SYSLOG_IN_PROCESS": "false",
            **(env or {}),
        }
        process = start_manage("run_syslog", *args, env=env, greeting="Receiving syslog on")
        processes.append(process)
        return process

    yield start
    stop_all(processes)
