"""Server processes of a benchmark run: daphne or uvicorn serving ThreatLens, or the ceiling."""

import contextlib
import json
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


def free_port():
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def raise_open_files_limit():
    """Let a process hold thousands of sockets (runs in the child before exec)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def child_setup(nice=None):
    """What every process of a run does before exec: the open-files limit, and the
    scheduling priority asked for with --nice (on a machine shared with other work)."""

    def setup():
        raise_open_files_limit()
        if nice is not None:
            os.setpriority(os.PRIO_PROCESS, 0, nice)

    return setup


def command_for(kind, port, uvicorn_ws="auto", workdir=None, uvicorn_deflate=False):
    if kind == "daphne":
        return [str(BIN / "daphne"), "-b", HOST, "-p", str(port), "threatlens.asgi:application"]
    if kind == "uvicorn":
        # As `make run` runs it (uvicorn's own log level, no access log), so that what
        # the server logs costs what it costs there.
        return [
            str(BIN / "uvicorn"),
            "--host",
            HOST,
            "--port",
            str(port),
            "--no-access-log",
            "--ws",
            uvicorn_ws,
            # As the README runs it: per-message-deflate off (see "Configuration").
            "--ws-per-message-deflate",
            "true" if uvicorn_deflate else "false",
            "threatlens.asgi:application",
        ]
    if kind.startswith("memprobe-"):  # uvicorn or daphne under tracemalloc (bench/memprobe.py)
        server = kind.removeprefix("memprobe-")
        probe = [sys.executable, "-m", "bench.memprobe", "--port", str(port)]
        return probe + ["--snapshots", workdir, "--server", server]
    if kind == "ceiling":
        return [sys.executable, "-m", "bench.ceiling", "--port", str(port)]
    if kind in ("asgi-ceiling", "asgi-tasks-ceiling"):
        return [
            str(BIN / "uvicorn"),
            "--host",
            HOST,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--ws",
            uvicorn_ws,
            "bench.asgi_ceiling:app" if kind == "asgi-ceiling" else "bench.asgi_ceiling:app_tasks",
        ]
    raise ValueError(f"unknown server kind {kind!r}")


class ServerProcess:
    """One server on a loopback port, with its log file, RSS and CPU time."""

    def __init__(
        self, kind, env, workdir, name, uvicorn_ws="auto", nice=None, uvicorn_deflate=False
    ):
        self.kind = kind
        self.nice = nice
        self.uvicorn_ws = uvicorn_ws
        self.uvicorn_deflate = uvicorn_deflate
        self.port = free_port()
        self.env = env
        self.name = name
        self.workdir = str(workdir)
        self.log_path = Path(workdir) / f"{name}.log"
        self.process = None
        self.ps = None

    @property
    def pid(self):
        return self.process.pid

    @property
    def http_url(self):
        return f"http://{HOST}:{self.port}"

    def ws_url(self, path="/ws"):
        return f"ws://{HOST}:{self.port}{path}"

    def start(self, timeout=60):
        command = command_for(
            self.kind, self.port, self.uvicorn_ws, self.workdir, self.uvicorn_deflate
        )
        return self._launch(command, self._answers, f"answer on port {self.port}", timeout)

    def start_command(self, command, port, timeout=180):
        """Start `command` (not a web server) and wait until it listens on TCP `port`."""

        def listens():
            try:
                with socket.create_connection((HOST, port), timeout=1):
                    return True
            except OSError:
                return False

        return self._launch(command, listens, f"listen on port {port}", timeout)

    def _launch(self, command, ready, what, timeout):
        """Start `command` with its output in the log, and wait until `ready()`; a process
        that exits or is not ready within `timeout` is an error (and is not left running)."""
        log = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the process's life
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=child_setup(self.nice),
        )
        log.close()
        self.ps = psutil.Process(self.process.pid)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            if ready():
                return self
            time.sleep(0.1)
        self.stop()  # not left running behind the error
        raise RuntimeError(f"{self.name} did not {what} within {timeout} s")

    def _answers(self):
        if self.kind in ("ceiling", "asgi-ceiling", "asgi-tasks-ceiling"):
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    return True
            except OSError:
                return False
        try:
            with urllib.request.urlopen(f"{self.http_url}/realtime/status", timeout=5):
                return True
        except urllib.error.HTTPError:
            return True  # 503 while a component is degraded is still an answer
        except OSError:
            return False

    def rss(self):
        """Resident memory of the server and its children, in bytes."""
        total = self.ps.memory_info().rss
        for child in self.ps.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += child.memory_info().rss
        return total

    def cpu_seconds(self):
        """CPU time of the server and its children (the syslog child process), live or
        ended."""
        times = self.ps.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in self.ps.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
        return total

    def snapshot_memory(self, number, timeout=120):
        """Ask a `memprobe` server for tracemalloc snapshot `number`; returns its path."""
        path = Path(self.workdir) / f"snapshot-{number}.pickle"
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.time() + timeout
        while not path.exists():
            if time.time() > deadline:
                raise RuntimeError(f"{self.name} wrote no tracemalloc snapshot")
            time.sleep(0.2)
        return path

    def log_tail(self, lines=30):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout=15):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def bench_environment(
    workdir, *, database_url=None, redis_url=None, prefix="", server_env=(), **settings
):
    """The environment of a benchmark's server: a fresh SQLite in `workdir` (or
    `database_url`), a new secret key, DEBUG off and the log level as `make run` has them,
    Redis when `redis_url` is given, the benchmark's own `settings`, then the user's
    `--server-env NAME=VALUE`."""
    overrides = {
        "DJANGO_SETTINGS_MODULE": "threatlens.settings",
        "DATABASE_URL": database_url or f"sqlite:///{Path(workdir) / 'bench.sqlite3'}",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DEBUG": "false",
        "PYTHONUNBUFFERED": "1",
        **settings,
    }
    if redis_url:
        overrides.update(REDIS_URL=redis_url, REDIS_KEY_PREFIX=prefix)
    for item in server_env:
        name, _, value = item.partition("=")
        overrides[name] = value
    return server_environment(os.environ, **overrides)


def server_environment(base, **overrides):
    """The servers' environment: the caller's, minus settings this run decides itself."""
    env = {
        key: value
        for key, value in base.items()
        if key
        not in {"DATABASE_URL", "DATABASE_TEST_NAME", "REDIS_URL", "REDIS_KEY_PREFIX", "DEBUG"}
    }
    env.update({key: str(value) for key, value in overrides.items() if value is not None})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")]))
    return env


def prepare_database(env, *, users, password, prefix, role="viewer"):
    """`python -m bench.prepare` in `env`: migrates the database and makes `users` users
    of `role`; returns what it prints (its last line, JSON)."""
    config = {"users": users, "password": password, "prefix": prefix, "role": role}
    completed = subprocess.run(
        [sys.executable, "-m", "bench.prepare", json.dumps(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"preparing the database failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])
