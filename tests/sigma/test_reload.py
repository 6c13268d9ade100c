"""A rule change reaches every process: a syslog line after an upload made elsewhere."""

import time

import pytest
from rest_framework.test import APIClient

from incidents.models import SecurityEvent
from incidents.sigma import runtime
from incidents.syslog.sink import RawLogSink, ReceivedLine
from tests.sigma.helpers import rule_yaml
from tests.syslog.helpers import eventually, in_thread
from tests.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

RULE_ID = "3f2c1d9e-8b7a-4c6d-9e0f-112233445566"
RULE = rule_yaml(
    "sel: {user: oracle}\ncondition: sel", title="Login attempt as oracle", rule_id=RULE_ID
)


def failure():
    return (
        "<38>Mar 10 14:02:11 web01 sshd[811]: Failed password for oracle from "
        "203.0.113.45 port 40001 ssh2"
    )


async def test_a_rule_uploaded_in_another_process_fires_on_the_next_syslog_line(
    settings, monkeypatch, alice
):
    settings.SIGMA_RELOAD_SECONDS = 0.2
    # This process's engine exists (no rules) before the upload.
    await in_thread(runtime.current_engine)
    assert len(runtime.existing_engine()) == 0
    # The upload happens "elsewhere": only the shared version moves, this process is not
    # told directly.
    monkeypatch.setattr(runtime, "forget_engine", lambda: None)

    def upload():
        client = APIClient()
        client.force_authenticate(alice)
        return client.post("/api/sigma/rules/", {"text": RULE}, format="json")

    response = await in_thread(upload)
    assert response.status_code == 201
    # Not told, this process sees the new version once SIGMA_RELOAD_SECONDS passed.
    await until(
        lambda: in_thread(lambda: len(runtime.current_engine()) == 1),
        "this process's engine reloads with the rule",
    )

    sink = RawLogSink(max_lines=50)
    try:
        await sink.put([ReceivedLine(failure(), "sshd", time.time(), "tcp", "192.0.2.1")])
        assert await eventually(lambda: sink.stats()["processed"] == 1, timeout=20)
    finally:
        sink.close()
    rule_ids = await in_thread(
        lambda: list(SecurityEvent.objects.values_list("rule_id", flat=True))
    )
    assert f"sigma:{RULE_ID}" in rule_ids


def test_a_process_keeps_its_engine_until_the_version_moves(settings, db):
    settings.SIGMA_RELOAD_SECONDS = 0
    first = runtime.current_engine()
    assert runtime.current_engine() is first
    runtime.bump_version()
    assert runtime.current_engine() is not first
