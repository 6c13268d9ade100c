"""A real rsyslogd (Debian's rsyslog and rsyslog-relp) forwarding to `manage.py
run_syslog` with the README's configuration: omfwd over TCP with octet-counted framing,
and omrelp, also across a receiver killed mid-stream."""

import asyncio
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter

import pytest

from incidents.syslog.sink import origin_name
from tests.e2e.live_server import free_port
from tests.syslog.helpers import in_thread, stored, stored_lines

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
OMRELP = glob.glob("/usr/lib/*/rsyslog/omrelp.so") + glob.glob("/usr/lib/rsyslog/omrelp.so")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (os.access(RSYSLOGD, os.X_OK) and OMRELP),
        reason="rsyslogd with omrelp is not installed (Debian: rsyslog rsyslog-relp)",
    ),
]


def message(n):
    return (
        f"<38>1 2025-03-10T14:02:11.{n:06d}Z web01 sshd 811 - - Failed password for root "
        f"from 203.0.113.9 port {20000 + n} ssh2"
    )


class Rsyslogd:
    """rsyslogd in the foreground with a configuration of its own, taking lines on a
    local TCP port (as a host's own logs would come in) and forwarding them."""

    def __init__(self, directory, actions):
        self.directory = directory
        self.input_port = free_port()
        config = directory / "rsyslog.conf"
        config.write_text(
            f'global(workDirectory="{directory}")\n'
            'module(load="imtcp")\n'
            'module(load="omrelp")\n'
            f'input(type="imtcp" address="127.0.0.1" port="{self.input_port}" '
            'ruleset="forward")\n'
            'ruleset(name="forward") {\n' + actions + "\n}\n"
        )
        self.process = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(config), "-i", str(directory / "rsyslogd.pid")],
            stdout=subprocess.DEVNULL,
            stderr=open(directory / "rsyslogd.log", "wb"),  # noqa: SIM115 (kept by the process)
        )
        deadline = time.time() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.input_port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or self.process.poll() is not None:
                    raise RuntimeError((directory / "rsyslogd.log").read_text()) from None
                time.sleep(0.1)

    def log(self, lines):
        with socket.create_connection(("127.0.0.1", self.input_port)) as sock:
            sock.sendall("".join(line + "\n" for line in lines).encode())

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def rsyslogd(tmp_path):
    started = []

    def start(actions):
        daemon = Rsyslogd(tmp_path, actions)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


async def test_rsyslog_forwards_over_octet_counted_tcp_and_relp(run_syslog, rsyslogd):
    tcp_port, relp_port = free_port(), free_port()
    run_syslog("--tcp-port", str(tcp_port), "--relp-port", str(relp_port))
    daemon = rsyslogd(
        # The README's two snippets, pointed at this receiver.
        f'action(type="omfwd" target="127.0.0.1" port="{tcp_port}" protocol="tcp"\n'
        '       TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"\n'
        '       queue.type="LinkedList" queue.filename="threatlens" '
        'action.resumeRetryCount="-1")\n'
        f'action(type="omrelp" target="127.0.0.1" port="{relp_port}" '
        'action.resumeRetryCount="-1")'
    )
    count = 500
    daemon.log([message(n) for n in range(count)])
    for transport in ("tcp", "relp"):
        assert await stored(
            lambda lines: len(lines) >= count,
            timeout=30,
            file_name=origin_name(transport, "127.0.0.1"),
        ), transport
    tcp = await in_thread(stored_lines, origin_name("tcp", "127.0.0.1"))
    relp = await in_thread(stored_lines, origin_name("relp", "127.0.0.1"))
    # The RFC 5424 form rsyslog sends: the same header fields, the same message.
    assert tcp[0].startswith("<38>1 2025-03-10T14:02:11.000000") and tcp[0].endswith(
        "Failed password for root from 203.0.113.9 port 20000 ssh2"
    )
    for lines in (tcp, relp):
        assert len(lines) == count
        assert [line.rsplit("port ", 1)[1] for line in lines] == [
            f"{20000 + n} ssh2" for n in range(count)
        ]


async def test_rsyslog_relp_across_a_receiver_killed_mid_stream_stores_each_line_once(
    run_syslog, rsyslogd
):
    relp_port = free_port()
    arguments = ("--relp-port", str(relp_port))
    server = run_syslog(*arguments)
    daemon = rsyslogd(
        f'action(type="omrelp" target="127.0.0.1" port="{relp_port}"\n'
        '       action.resumeRetryCount="-1" action.resumeInterval="1")'
    )
    relp_lines = origin_name("relp", "127.0.0.1")
    count = 4000
    feeder = asyncio.create_task(in_thread(daemon.log, [message(n) for n in range(count)]))
    assert await stored(lambda lines: len(lines) >= 500, timeout=60, file_name=relp_lines)
    server.kill()
    server.wait()
    server = run_syslog(*arguments)
    await feeder
    assert await stored(lambda lines: len(lines) >= count, timeout=120, file_name=relp_lines)
    lines = await all_resends_stored(daemon, count, relp_lines)
    counts = Counter(line.rsplit("port ", 1)[1] for line in lines)
    twice = sorted(key for key, seen in counts.items() if seen > 1)
    missing = [n for n in range(count) if counts[f"{20000 + n} ssh2"] == 0]
    assert (missing, twice) == ([], [])


async def all_resends_stored(daemon, count, file_name):
    """The stored lines once a marker line sent after the `count` others is stored: rsyslog
    sends what it sends again before anything new on its RELP session, so every copy of
    an earlier line is stored by then (instead of waiting a guessed time for them)."""
    daemon.log([message(count)])
    marker = f"port {20000 + count} ssh2"  # rsyslog stores it with a header of its own
    assert await stored(
        lambda lines: any(line.endswith(marker) for line in lines), timeout=60, file_name=file_name
    )
    return await in_thread(stored_lines, file_name)


class AnswerEatingProxy:
    """A TCP proxy that passes everything, until `eat_answers()`: from then on what the
    server sends is dropped (the sender's frames still go through), and `cut()` breaks
    every connection. The sender's frames are stored but it never hears so."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.eating = False
        self.pipes = []

    async def start(self):
        self.server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _connected(self, client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.pipes += [client_writer, server_writer]
        await asyncio.gather(
            self._pipe(client_reader, server_writer, answers=False),
            self._pipe(server_reader, client_writer, answers=True),
            return_exceptions=True,
        )

    async def _pipe(self, reader, writer, *, answers):
        while data := await reader.read(65536):
            if not (answers and self.eating):
                writer.write(data)
                await writer.drain()
        writer.close()

    def eat_answers(self):
        self.eating = True

    def cut(self):
        self.eating = False
        for writer in self.pipes:
            writer.transport.abort()
        self.pipes = []

    def close(self):
        self.server.close()


async def test_rsyslog_relp_frames_resent_after_lost_answers_are_stored_once(run_syslog, rsyslogd):
    relp_port = free_port()
    server = run_syslog("--relp-port", str(relp_port))
    proxy = await AnswerEatingProxy(relp_port).start()
    daemon = rsyslogd(
        f'action(type="omrelp" target="127.0.0.1" port="{proxy.port}"\n'
        '       action.resumeRetryCount="-1" action.resumeInterval="1")'
    )
    relp_lines = origin_name("relp", "127.0.0.1")
    count = 1000
    daemon.log([message(n) for n in range(200)])
    assert await stored(lambda lines: len(lines) == 200, timeout=30, file_name=relp_lines)
    # Answers lost on the way back: rsyslog keeps sending up to its window, all of which is
    # stored, then waits for answers that never come. The connection breaks.
    proxy.eat_answers()
    feeder = asyncio.create_task(in_thread(daemon.log, [message(n) for n in range(200, count)]))
    before = -1
    while before != (now := len(await in_thread(stored_lines, relp_lines))):
        before = now
        await asyncio.sleep(1.0)
    assert now > 200
    proxy.cut()
    await feeder
    assert await stored(lambda lines: len(lines) >= count, timeout=60, file_name=relp_lines)
    lines = await all_resends_stored(daemon, count, relp_lines)
    counts = Counter(line.rsplit("port ", 1)[1] for line in lines)
    assert sorted(key for key, seen in counts.items() if seen > 1) == []
    assert len(lines) == count + 1  # and the marker
    proxy.close()
    # rsyslog did send them again, and the receiver recognised them.
    assert any("frames sent again were stored already" in line for line in server.output)


async def test_rsyslog_relp_over_mutual_tls(run_syslog, rsyslogd, tmp_path):
    from tests.syslog.certificates import make_certificates

    certificates = make_certificates(tmp_path)
    relp_port = free_port()
    run_syslog(
        "--relp-port",
        str(relp_port),
        env={
            "SYSLOG_RELP_TLS": "true",
            "SYSLOG_TLS_CERT": str(certificates.server_cert),
            "SYSLOG_TLS_KEY": str(certificates.server_key),
            "SYSLOG_TLS_CLIENT_CA": str(certificates.ca),
        },
    )
    # librelp over TLS offers only anonymous ciphers unless it has a certificate of its own.
    daemon = rsyslogd(
        f'action(type="omrelp" target="127.0.0.1" port="{relp_port}" tls="on"\n'
        f'       tls.caCert="{certificates.ca}" tls.myCert="{certificates.client_cert}"\n'
        f'       tls.myPrivKey="{certificates.client_key}"\n'
        '       tls.authMode="name" tls.permittedPeer=["localhost"])'
    )
    daemon.log([message(n) for n in range(50)])
    relp_lines = origin_name("relp", "127.0.0.1")
    assert await stored(lambda lines: len(lines) >= 50, timeout=30, file_name=relp_lines)
    assert len(await in_thread(stored_lines, relp_lines)) == 50
