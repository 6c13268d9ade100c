"""A `named -g` of its own, for the end-to-end tests and `python -m bench.dns`.

    named = NamedProcess(bind_dir, port=..., control_port=..., stats_port=...)
    named.start()          # after bind_sync wrote BIND_DIR/named.conf (BIND_NAMED_CONF)
    named.query("www.lab.example", "A")
    named.stop()

named runs in the foreground (`-g`, its log in BIND_DIR/named.log) as the user who starts
it: everything it reads and writes is in BIND_DIR and the ports are above 1024.
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import dnslib

from dns.bind import NAMED_CONF_NAME


def find_named():
    """The named binary, or None (Debian keeps it in /usr/sbin, often not on PATH)."""
    found = shutil.which("named")
    if found:
        return found
    return "/usr/sbin/named" if os.access("/usr/sbin/named", os.X_OK) else None


def free_port():
    """A port free on 127.0.0.1 for both UDP and TCP (named listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port on 127.0.0.1")


def query(port, name, qtype="A", *, timeout=2.0, address="127.0.0.1"):
    """One UDP query; returns the parsed answer (dnslib.DNSRecord)."""
    request = dnslib.DNSRecord.question(name, qtype)
    return dnslib.DNSRecord.parse(request.send(address, port, timeout=timeout))


class NamedProcess:
    """named started on BIND_DIR/named.conf; stopped by `stop()` (its own PID only)."""

    def __init__(self, directory, *, port, named=None):
        self.directory = Path(directory)
        self.port = port
        self.named = named or find_named()
        self.process = None
        self.log_path = self.directory / "named.log"

    def start(self, *, timeout=15.0, ready_name="rpz"):
        conf = self.directory / NAMED_CONF_NAME
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed by stop())
        self.process = subprocess.Popen(
            [self.named, "-g", "-c", str(conf)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"named exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                query(self.port, ready_name, "SOA", timeout=0.3)
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"named did not answer within {timeout} s:\n{self.log_tail()}")

    def query(self, name, qtype="A", **options):
        return query(self.port, name, qtype, **options)

    def log_tail(self, lines=30):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
