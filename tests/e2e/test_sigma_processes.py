"""A Sigma rule uploaded over REST to one process fires on the next syslog line in every
process: a server (syslog received in process) and `manage.py run_syslog` beside it, on
the tests' database (SQLite with no shared cache, or PostgreSQL and Redis)."""

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime

import pytest

from tests.e2e.live_server import ROOT, database_url, free_port

pytestmark = pytest.mark.e2e

RULE = """title: Login attempt as {user}
id: {rule_id}
status: test
author: ThreatLens e2e test
logsource: {{product: linux, service: sshd}}
detection:
  sel: {{user: {user}}}
  condition: sel
level: high
tags: [attack.t1078.003, attack.initial-access]
"""


def failed_login(user, address):
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    line = (
        f"<38>1 {stamp} web01 sshd 811 - - Failed password for {user} from {address} "
        "port 40001 ssh2"
    )
    return f"{len(line.encode())} {line}".encode()


def send_tcp(port, payload, timeout=20.0):
    """Send one octet-counted frame, retrying until the receiver listens."""
    deadline = time.time() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(payload)
                return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def events_of(server, token, rule_id, address):
    status, body = server.request(
        "GET", f"/api/events/?src_ip={address}&technique=T1078", token=token
    )
    assert status == 200, body
    return [e for e in body["results"] if e["rule_id"] == f"sigma:{rule_id}"]


def processed(*addresses):
    """Whether the lines from these addresses went through detection in their process
    (the raw logs holding them are finished)."""
    from incidents.models import FINISHED_RAW_LOG_STATUSES, RawLog

    finished = RawLog.objects.filter(status__in=FINISHED_RAW_LOG_STATUSES)
    return all(finished.filter(content__contains=f"from {a} port").exists() for a in addresses)


def eventually(check, timeout=20.0):
    deadline = time.time() + timeout
    while True:
        found = check()
        if found or time.time() > deadline:
            return found
        time.sleep(0.2)


@pytest.fixture
def run_syslog(transactional_db):
    """`manage.py run_syslog` on a free TCP port, on the tests' database."""
    processes = []

    def start(**env):
        port = free_port()
        log = tempfile.TemporaryFile()  # noqa: SIM115 (closed below)
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_syslog", "--bind", "127.0.0.1",
             "--tcp-port", str(port), "--udp-port", "0"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url(), **env},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )  # fmt: skip
        processes.append((process, log))
        return port, process, log

    yield start
    for process, log in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def test_a_sigma_rule_uploaded_over_rest_fires_on_the_next_syslog_line_in_every_process(
    running_server, run_syslog, alice, token_for
):
    server_port = free_port()
    # The receiver on the server's loop, so the upload's own process processes the line
    # (the default child process learns of the rule as `run_syslog` does, below).
    server = running_server(
        "uvicorn",
        SYSLOG_IN_PROCESS="true",
        SYSLOG_PROCESS="loop",
        SYSLOG_TCP_PORT=str(server_port),
        SYSLOG_UDP_PORT="0",
    )
    receiver_port, receiver, receiver_log = run_syslog()
    token = token_for(alice)
    user = f"oracle{uuid.uuid4().hex[:6]}"
    rule_id = str(uuid.uuid4())

    # Both processes run their engine (no such rule yet) before the upload: the line
    # raises no Sigma event in either.
    send_tcp(server_port, failed_login(user, "203.0.113.10"))
    send_tcp(receiver_port, failed_login(user, "203.0.113.20"))
    assert eventually(lambda: processed("203.0.113.10", "203.0.113.20")), "lines not processed"
    assert events_of(server, token, rule_id, "203.0.113.10") == []
    assert events_of(server, token, rule_id, "203.0.113.20") == []

    status, rule = server.request(
        "POST", "/api/sigma/rules/", {"text": RULE.format(user=user, rule_id=rule_id)}, token
    )
    assert status == 201 and rule["state"] == "loaded", rule

    # The next line fires the rule in the process that took the upload...
    send_tcp(server_port, failed_login(user, "203.0.113.11"))
    fired = eventually(lambda: events_of(server, token, rule_id, "203.0.113.11"))
    assert fired and fired[0]["analysis"]["attack"]["techniques"] == ["T1078.003"], fired

    # ...and in the other process, which learns of it on its own (SIGMA_RELOAD_SECONDS):
    # a line at a time until one fires.
    def fired_in_the_other_process():
        send_tcp(receiver_port, failed_login(user, "203.0.113.21"))
        return events_of(server, token, rule_id, "203.0.113.21")

    fired = eventually(fired_in_the_other_process)
    receiver_log.seek(0)
    assert fired, f"run_syslog did not fire the rule: {receiver_log.read().decode()[-2000:]}"
    assert receiver.poll() is None

    # A disable reaches both the same way.
    status, body = server.request(
        "PATCH", f"/api/sigma/rules/{rule['id']}/", {"enabled": False}, token
    )
    assert status == 200 and body["state"] == "disabled", body
    # Nothing tells when the other process reloaded: that it does so within its reload
    # interval (SIGMA_RELOAD_SECONDS, 1 s) is what is tested, so the interval is let pass.
    time.sleep(1.2)
    send_tcp(server_port, failed_login(user, "203.0.113.12"))
    send_tcp(receiver_port, failed_login(user, "203.0.113.22"))
    assert eventually(lambda: processed("203.0.113.12", "203.0.113.22")), "lines not processed"
    assert events_of(server, token, rule_id, "203.0.113.12") == []
    assert events_of(server, token, rule_id, "203.0.113.22") == []
