"""The receiver inside the server process, and `manage.py run_syslog` with `logger`."""

import asyncio
import shutil
import signal
import socket
import subprocess

import pytest

from incidents.models import RawLog
from incidents.syslog.server import ReceiverConfig
from incidents.syslog.service import SyslogService
from tests.e2e.live_server import free_port
from tests.syslog.helpers import eventually, in_thread, stored, stored_lines
from tests.waiting import until
from threatlens.monitoring import startup

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _stopped():
    yield
    await startup.stop_in_process()


async def test_the_server_process_runs_the_receiver_when_a_port_is_set(settings):
    settings.SYSLOG_IN_PROCESS = True
    settings.SYSLOG_TCP_PORT = free_port()
    services = startup.start_in_process()
    assert services.syslog is not None and services.runner is None
    assert await services.syslog.wait_listening(5)
    _reader, writer = await asyncio.open_connection("127.0.0.1", settings.SYSLOG_TCP_PORT)
    writer.write(b"<13>Mar 10 14:02:11 web01 app: in process\n")
    await writer.drain()
    writer.close()
    assert await stored(lambda lines: "<13>Mar 10 14:02:11 web01 app: in process" in lines)


async def test_no_port_no_receiver(settings):
    settings.SYSLOG_IN_PROCESS = True
    assert startup.start_in_process() is None


async def test_the_monitors_report_the_receivers_health(settings):
    settings.MONITORS_IN_PROCESS = True
    settings.MONITORS = {"TICK": 0.05, "CHECK_INTERVAL": 0.1}
    settings.SYSLOG_IN_PROCESS = True
    settings.SYSLOG_UDP_PORT = free_port()
    services = startup.start_in_process()
    assert [job.name for job in services.runner.jobs][-1] == "syslog_receiver"
    assert await services.syslog.wait_listening(5)
    health = services.syslog.health()
    assert health.status == "healthy"
    assert health.metrics["listening"] == f"udp 127.0.0.1:{settings.SYSLOG_UDP_PORT}"


async def test_a_service_whose_port_is_taken_waits_and_takes_over_when_it_is_free(sink):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    service = SyslogService(ReceiverConfig(tcp_port=port), sink, retry_interval=0.1).start()
    try:
        await until(
            lambda: f"127.0.0.1:{port}" in (service.health().message or ""),
            "the service reports the taken port",
        )
        assert service.receiver is None
        assert service.health().status == "warning"
        holder.close()
        assert await service.wait_listening(5)
        assert service.health().status == "healthy"
    finally:
        holder.close()
        await service.stop()


@pytest.mark.skipif(shutil.which("logger") is None, reason="util-linux logger is not installed")
@pytest.mark.e2e
async def test_the_readme_logger_lines_reach_run_syslog(run_syslog):
    port = free_port()
    process = run_syslog("--tcp-port", str(port), "--udp-port", str(port))
    server = ["logger", "--server", "127.0.0.1", "--port", str(port)]
    sent = {
        "--tcp": "tcp, LF-terminated",
        "--octet-count": "tcp, octet-counted",
        "--udp": "udp",
        "--rfc3164": "udp, RFC 3164",
    }
    for option, text in sent.items():
        extra = ["--tcp", "--octet-count"] if option == "--octet-count" else [option]
        subprocess.run([*server, *extra, "-t", "sshd", text], check=True, timeout=10)
    assert await stored(
        lambda lines: all(any(line.endswith(text) for line in lines) for text in sent.values())
    ), await in_thread(stored_lines)
    sources = await in_thread(lambda: set(RawLog.objects.values_list("source", flat=True)))
    assert sources == {"sshd"}
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    assert await eventually(lambda: "Stopped.\n" in process.output)


def test_run_syslog_without_a_port_says_what_to_set(settings):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="SYSLOG_TCP_PORT"):
        call_command("run_syslog")
