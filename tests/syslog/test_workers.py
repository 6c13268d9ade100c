"""Several workers on PostgreSQL and Redis: the incoming work is shared (each line
processed once), and a brute force whose lines are split between them fires once
(the detection state is shared in Redis, `incidents.pipeline.shared_state`)."""

import os
import socket

import pytest
from django.conf import settings
from django.db import connection

from incidents.ingest import receive_raw_log
from incidents.models import Alert, RawLog, RawLogStatus, SecurityEvent
from tests.e2e.live_server import database_url, free_port
from tests.syslog.processes import start_manage, stop_all
from tests.syslog.test_ingest_crash import wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not settings.REDIS_URL,
        reason="several workers need PostgreSQL and Redis (the make pytest-services pass)",
    ),
]

ATTACKER = "203.0.113.77"


def brute_force(count):
    """`count` failed SSH logins from one address, a second apart (10 within 300 s is a
    brute force: ssh_bruteforce_ip, and ssh_bruteforce_user for root)."""
    return [
        f"<38>1 2025-03-10T14:02:{n:02d}.000Z web01 sshd 811 - - Failed password for root "
        f"from {ATTACKER} port {40000 + n} ssh2"
        for n in range(count)
    ]


def benign(count):
    return [
        f"<86>1 2025-03-10T14:03:{n:02d}.000Z web01 sshd 900 - - Accepted publickey for "
        f"deploy from 192.0.2.10 port {50000 + n} ssh2"
        for n in range(count)
    ]


def worker_env():
    # The test run's own key prefix: its shared detection state, nobody else's.
    return {
        "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
        "DETECTION_STATE_STORE": "redis",
        "LOG_PROCESSING_CHUNK_LINES": "3",
        "RESUME_RAW_LOGS": "false",
    }


def send(port, lines):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall("".join(line + "\n" for line in lines).encode())


def everything_processed(lines):
    logs = list(RawLog.objects.values_list("status", "lines_total"))
    return sum(total for _status, total in logs) == lines and all(
        status == RawLogStatus.COMPLETED for status, _total in logs
    )


def attacker_events():
    return sorted(
        SecurityEvent.objects.filter(src_ip=ATTACKER).values_list("rule_id", "correlation_key")
    )


FIRED_ONCE = [
    ("ssh_bruteforce_ip", f"ssh_bruteforce_ip:{ATTACKER}"),
    ("ssh_bruteforce_user", "ssh_bruteforce_user:root"),
]


@pytest.fixture
def process_logs(transactional_db):
    """process_logs(*args) -> a `manage.py process_logs` worker; stopped at the end."""
    processes = []

    def start(*args, env=None):
        env = {**os.environ, "DATABASE_URL": database_url(), **(env or {})}
        process = start_manage(
            "process_logs", *args, env=env, greeting="Processing stored raw logs"
        )
        processes.append(process)
        return process

    yield start
    stop_all(processes)


def test_a_brute_force_split_between_two_receivers_fires_once(run_syslog):
    """Each receiver gets 6 of the 12 failures: below the threshold of 10 for either
    alone, a brute force together."""
    ports = [free_port(), free_port()]
    for port in ports:
        run_syslog("--tcp-port", str(port), env=worker_env())
    attack = brute_force(12)
    for n, line in enumerate(attack):
        send(ports[n % 2], [line])
    send(ports[0], benign(5))
    send(ports[1], benign(5))

    assert wait_until(lambda: everything_processed(22), 120)
    assert attacker_events() == FIRED_ONCE
    alerts = Alert.objects.filter(correlation_key=f"ssh_bruteforce_ip:{ATTACKER}")
    assert [alert.occurrence_count for alert in alerts] == [1]
    # Each line once: 12 + 10 lines processed over both receivers' raw logs.
    assert RawLog.objects.count() >= 2


def test_two_workers_share_the_stored_raw_logs_and_fire_a_split_brute_force_once(
    process_logs,
):
    workers = [process_logs("--poll", "0.05", "-v", "2", env=worker_env()) for _ in range(2)]
    # Stored as a receiver with --store-only stores them, while both workers poll.
    ids = [
        receive_raw_log(
            source="syslog", content="\n".join([line, *benign(2)]), actor=None, audit=False
        ).pk
        for line in brute_force(12)
    ]
    assert wait_until(lambda: everything_processed(36), 120)

    def processed():
        return [
            int(line.split()[-1].rstrip("."))
            for worker in workers
            for line in list(worker.output)
            if line.startswith("Processed raw log")
        ]

    # Each raw log processed once, by one of the two workers (their output may come a
    # moment after the commit).
    assert wait_until(lambda: len(processed()) >= len(ids), 30)
    assert sorted(processed()) == sorted(ids)
    assert attacker_events() == FIRED_ONCE
    assert SecurityEvent.objects.count() == len(FIRED_ONCE)
    alerts = Alert.objects.filter(correlation_key=f"ssh_bruteforce_ip:{ATTACKER}")
    assert [alert.occurrence_count for alert in alerts] == [1]


def test_a_store_only_receiver_leaves_the_processing_to_the_workers(run_syslog, process_logs):
    port = free_port()
    run_syslog("--tcp-port", str(port), "--store-only", env=worker_env())
    send(port, brute_force(12))
    assert wait_until(lambda: RawLog.objects.exists(), 60)
    assert wait_until(
        lambda: (
            sum(RawLog.objects.values_list("lines_total", flat=True)) == 0
            and sum(len(c.split("\n")) for c in RawLog.objects.values_list("content", flat=True))
            == 12
        ),
        60,
    )
    assert set(RawLog.objects.values_list("status", flat=True)) == {RawLogStatus.RECEIVED}

    process_logs("--poll", "0.05", env=worker_env())
    assert wait_until(lambda: everything_processed(12), 120)
    assert attacker_events() == FIRED_ONCE
