"""A real server (daphne or uvicorn) on a loopback port, sharing the test database, for
end-to-end tests; free ports and the database URL for other processes the tests start."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url():
    """The URL of the database the tests use, for the server process."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = settings["USER"] or "postgres"
    host = settings["HOST"] or "127.0.0.1"
    return f"postgres://{user}@{host}:{settings['PORT'] or 5432}/{settings['NAME']}"


class LiveServer:
    def __init__(self, kind="daphne", extra_env=None, *, verbose=False, server_args=()):
        self.kind = kind
        self.verbose = verbose  # the server's most talkative log, access log included
        self.server_args = list(server_args)  # the server's own options (daphne --ping-timeout)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
            **(extra_env or {}),
        }
        self.process = None

    def start(self):
        return self.launch().wait_ready()

    def launch(self):
        bin_dir = Path(sys.executable).parent
        if self.kind == "daphne":
            command = [
                str(bin_dir / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                *(["-v", "2", "--access-log", "-"] if self.verbose else []),
                *self.server_args,
                "threatlens.asgi:application",
            ]
        else:
            command = [
                str(bin_dir / "uvicorn"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "trace" if self.verbose else "warning",
                *self.server_args,
                "threatlens.asgi:application",
            ]
        # The log goes to a file: a pipe nobody reads would stall a chatty server.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=self.log if self.verbose else subprocess.DEVNULL,
            stderr=self.log,
        )
        return self

    def log_text(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait_ready(self):
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    return self
            except urllib.error.HTTPError:
                return self  # it answers (503 is still an answer)
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.kind} did not start on port {self.port}")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.process:
            self.log.close()

    def request(self, method, path, body=None, token=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")
