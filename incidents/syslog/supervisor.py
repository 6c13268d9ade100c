"""The syslog receiver and its processing in a child process of the server
(SYSLOG_PROCESS=child, the default of SYSLOG_IN_PROCESS).

Parsing, detection and storing hold the interpreter lock; in the server's own process
they took it from the hub that delivers events to sockets (bench/RESULTS.md: the steady
p99 doubled, a burst lost 44%). So the server starts `manage.py run_syslog --supervised`
beside itself and watches over it from a thread of its own:

- a fresh interpreter (not a fork of the server: its loop, threads, sockets and database
  connections are not the child's to inherit), the tested `run_syslog` path;
- restarted when it exits, after 1 s, then twice as long each time up to 15 s (back to
  1 s once a child ran a minute), with a WARNING naming its exit code: a port held by
  another process (a second server, a `run_syslog`) is taken over within 15 s of being
  freed;
- stopped with SIGTERM (it stores and processes what it holds, within the sink's
  `CLOSE_TIMEOUT` of 60 s, then exits), killed after
  `stop_timeout` seconds; it exits by itself when the server dies (its standard input,
  a pipe the server holds, ends: `incidents/syslog/supervised.py`);
- its figures arrive as a JSON line a second on its standard output, and are shown as
  this process's `syslog_receiver` component and added to `log_ingest` and `/metrics`;
- after each commit of events it wakes the hub's event-table poll through a datagram
  socket (`realtime.wakeup`), so its events reach sockets within milliseconds.
"""

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from django.conf import settings

from incidents import ingest_metrics
from incidents.syslog.service import receiver_health
from realtime.wakeup import table_wakeups

logger = logging.getLogger(__name__)

FIRST_DELAY, LONGEST_DELAY = 1.0, 15.0  # seconds before a restart, doubling
STEADY_RUN = 60.0  # a child that ran this long starts the back-off again
# Ingest counters that only grow (the summed figures but the queue's gauges): a
# restarted child starts them at 0 again, so those of the children that ended are kept.
GAUGES = ("queue_depth", "queue_capacity")
GROWING = (*(key for key in ingest_metrics.SUMMED if key not in GAUGES), "state_evictions")


def carried_over(carried, last):
    """`carried` (the growing figures of the children that ended) plus those of `last`,
    the latest report of a child that ended; a new dict."""
    total = {key: carried.get(key, 0) + last.get(key, 0) for key in GROWING}
    by_transport = dict(carried.get("lines_malformed_by_transport", {}))
    for transport, count in last.get("lines_malformed_by_transport", {}).items():
        by_transport[transport] = by_transport.get(transport, 0) + count
    by_rule = {rule: dict(item) for rule, item in carried.get("state_by_rule", {}).items()}
    for rule, item in last.get("state_by_rule", {}).items():
        mine = by_rule.setdefault(rule, {"keys": 0, "evictions": 0})
        mine["evictions"] += item.get("evictions", 0)  # its keys died with it
    total.update(lines_malformed_by_transport=by_transport, state_by_rule=by_rule)
    return total


class SyslogChildProcess:
    """`manage.py run_syslog --supervised` for `config`, started, watched and restarted."""

    def __init__(self, config, *, stop_timeout=75.0, first_delay=FIRST_DELAY):
        self.config = config
        self.stop_timeout = stop_timeout
        self.first_delay = first_delay
        self.process = None
        self.stats = None  # the running child's latest receiver figures
        self.error = ""
        self.exit_codes = []  # of the children that ended
        self.started_at = time.time()
        self._ingest = None  # the running child's latest ingest figures
        self._carried = carried_over({}, {})  # ... of the children that ended
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = None
        self._wake_fd = None

    def __repr__(self):
        return f"<SyslogChildProcess pid={getattr(self.process, 'pid', None)}>"

    def start(self):
        self._wake_fd = table_wakeups.open()
        ingest_metrics.add_figures_source(self.ingest_figures)
        self._thread = threading.Thread(target=self._supervise, name="syslog-child", daemon=True)
        self._thread.start()
        return self

    def command(self):
        config = self.config
        ports = [
            f"--{name}-port={getattr(config, f'{name}_port') or 0}"
            for name in ("udp", "tcp", "tls", "relp")
        ]
        return [
            sys.executable, "-m", "django", "run_syslog", f"--bind={config.bind}", *ports,
            "--supervised", f"--wake-fd={self._wake_fd}",
        ]  # fmt: skip

    def _supervise(self):
        delay, last_code = self.first_delay, None
        while not self._stopping.is_set():
            began = time.monotonic()
            try:
                process = self._spawn()
                if process is None:
                    return
                code = self._watch(process)
            except Exception as exc:  # never the end of supervision: tried again later
                self.error = f"cannot start or watch: {exc}"
                logger.exception("the syslog child process cannot start or be watched")
            else:
                if self._stopping.is_set():
                    return
                # The same failure again and again (its port held by another process): said
                # once, then quietly retried.
                again = code == last_code and time.monotonic() - began < STEADY_RUN
                logger.log(
                    logging.DEBUG if again else logging.WARNING,
                    "the syslog child process (pid %d) exited with code %s; starting it "
                    "again in %g s",
                    process.pid,
                    code,
                    delay,
                )
                last_code = code
            if time.monotonic() - began >= STEADY_RUN:
                delay = self.first_delay
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, LONGEST_DELAY)

    def _spawn(self):
        module = settings.SETTINGS_MODULE or os.environ.get("DJANGO_SETTINGS_MODULE")
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": module or "threatlens.settings"}
        with self._lock:
            # Under the lock with `stop()`: it either sees this child or stops its start.
            if self._stopping.is_set():
                return None
            self.process = subprocess.Popen(
                self.command(),
                cwd=settings.BASE_DIR,
                env=env,
                stdin=subprocess.PIPE,  # never written: its end is the child's lifeline
                stdout=subprocess.PIPE,
                text=True,
                errors="replace",
                pass_fds=(self._wake_fd,),
                # Its own process group: a terminal's Ctrl-C reaches the server alone, which
                # then stops the child in order (SIGTERM), instead of both at once.
                start_new_session=True,
            )
            return self.process

    def _watch(self, process):
        """Follow the child until it exits; its exit code. Its output is read to the end
        whatever happens here: a child whose output is not read blocks on its next write."""
        try:
            self._follow(process)
        finally:
            for _line in process.stdout:
                pass
            code = process.wait()
            self._ended(process, code)
        return code

    def _follow(self, process):
        """Read the child's output until it exits: its reports, and its own lines."""
        for line in process.stdout:
            try:
                self._read(process, line)
            except Exception:  # one unreadable line, not the end of the child's figures
                logger.exception("unreadable line from the syslog child process")

    def _read(self, process, line):
        try:
            report = json.loads(line)
        except ValueError:
            report = None
        if isinstance(report, dict) and "syslog_stats" in report:
            with self._lock:
                self.stats, self._ingest = report["syslog_stats"], report.get("ingest")
            self.error = ""
        elif line.strip():
            logger.info("syslog child (pid %d): %s", process.pid, line.strip())

    def _ended(self, process, code):
        with self._lock:  # one swap: a reader never sees the ended child twice, or not at all
            self._carried = carried_over(self._carried, self._ingest or {})
            self.stats = self._ingest = None
        self.exit_codes.append(code)
        self.error = f"the child process exited with code {code}"
        process.stdin.close()
        process.stdout.close()

    def ingest_figures(self):
        """The children's ingest figures: the running one's, plus the totals of those
        that ended."""
        with self._lock:
            running, carried = self._ingest or {}, self._carried
        figures = dict(running)
        for key in GROWING:
            figures[key] = figures.get(key, 0) + carried[key]
        by_transport = dict(running.get("lines_malformed_by_transport", {}))
        for transport, count in carried["lines_malformed_by_transport"].items():
            by_transport[transport] = by_transport.get(transport, 0) + count
        by_rule = {rule: dict(item) for rule, item in running.get("state_by_rule", {}).items()}
        for rule, item in carried["state_by_rule"].items():
            mine = by_rule.setdefault(rule, {"keys": 0, "evictions": 0})
            mine["evictions"] = mine.get("evictions", 0) + item["evictions"]
        figures.update(lines_malformed_by_transport=by_transport, state_by_rule=by_rule)
        return figures

    def stop_sync(self):
        """Stop the child (SIGTERM; killed after `stop_timeout` s) and its supervision."""
        self._stopping.set()
        with self._lock:
            process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                logger.warning("the syslog child process did not stop in time: killed")
                process.kill()
        if self._thread is not None:
            self._thread.join(self.stop_timeout)
        ingest_metrics.remove_figures_source(self.ingest_figures)

    async def stop(self):
        await asyncio.to_thread(self.stop_sync)

    def health(self):
        """The `syslog_receiver` component, for the monitor runner."""
        stats = self.stats
        if stats is None:
            return receiver_health(None, error=self.error, started_at=self.started_at)
        return receiver_health(
            stats,
            listening={
                name: address.rsplit(":", 1) for name, address in stats["listening"].items()
            },
            started_at=stats.get("started_at") or self.started_at,
            process=self.process.pid if self.process is not None else None,
            restarts=len(self.exit_codes),
        )
