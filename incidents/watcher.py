"""Following log files as they grow, through rotation, into raw logs.

    watcher = LogWatcher([WatchTarget("/var/log/auth.log", "auth.log")])
    watcher.step()          # read what was appended; every `interval`, one raw log per file

What `tail -F` does, for the pipeline:

- A file is read from its end when the watcher starts (`from_start=True` reads what is
  already there too), then every new complete line. A line still being written (no
  newline yet) waits for its newline.
- Rotation by rename (logrotate's default, `create`): the path now names another file
  (device and inode changed). The old file is read to its end first (a writer may have
  added lines before it reopened), then the new file from its start. A path that has
  vanished is waited for; the old file keeps being read meanwhile.
- Rotation by truncation (`copytruncate`): the file is shorter than what was read; it is
  read again from its start.
- Lines read during one `interval` become one raw log per file (also sooner, when a batch
  reaches `max_batch_bytes`), processed at once by `incidents.processing`.

Positions are kept in memory: a restarted watcher starts at the files' ends again (or at
their starts with `from_start`), so lines written while it was stopped are not read.

`WatchService` runs a watcher in a thread of its own, for the server process (setting
`WATCH_LOGS`), publishing `system_status` for the `file_monitor` component.
"""

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.db import close_old_connections, connections

logger = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
# A "line" longer than this without a newline is cut here (the parsers flag it as
# malformed): a binary file must not grow the buffer without end.
MAX_LINE_BYTES = 64 * 1024


@dataclass(frozen=True)
class WatchTarget:
    """A file to follow and the source name its raw logs get."""

    path: str
    source: str

    @classmethod
    def parse(cls, spec, *, source=None):
        """`"path"` or `"source=path"` (the WATCH_LOGS form); `source` overrides. Without
        either, the source is the file's name (`auth.log`)."""
        spec = str(spec).strip()
        name, sep, path = spec.partition("=")
        if not sep or "/" in name:
            name, path = "", spec
        path = str(Path(path).expanduser())
        return cls(path=path, source=(source or name or Path(path).name).strip())


class _FollowedFile:
    """The open file behind one target, where we are in it, and the unfinished line."""

    def __init__(self, target, *, from_start):
        self.target = target
        self.handle = None
        self.identity = None
        self.offset = 0
        self.partial = b""
        self.from_start = from_start
        self.first_poll = True
        self.missing = False
        self.backlog = False  # more to read than the last poll's budget

    def poll(self, budget=None):
        """New complete lines of this target (see the module docstring for rotation),
        reading at most about `budget` bytes; the rest waits for the next poll."""
        lines = []
        stat = _stat(self.target.path)
        self.missing = stat is None and self.handle is None
        # Only a file there at the first poll has a past to skip: one that appears later
        # (or after rotation) is new, and read from its start.
        at_end = self.first_poll and not self.from_start
        self.first_poll = False
        if self.handle is None:
            if stat is None:
                return lines
            if not self._open(at_end=at_end):
                return lines
        elif stat is not None and _identity(stat) == self.identity and stat.st_size < self.offset:
            logger.info("%s was truncated; reading it again from its start", self.target.path)
            self.handle.seek(0)
            self.offset = 0
            self.partial = b""
        read, drained = self._read(budget)
        lines += read
        self.backlog = not drained
        if drained and stat is not None and _identity(stat) != self.identity:
            # Rotated: the old file is read to its end (just above); on to the new one.
            logger.info("%s was rotated; following the new file", self.target.path)
            if self.partial:
                lines.append(_decode(self.partial))
                self.partial = b""
            self.close()
            if self._open(at_end=False):
                read, drained = self._read(None if budget is None else budget // 2)
                lines += read
                self.backlog = not drained
        return lines

    def _open(self, *, at_end):
        try:
            handle = open(self.target.path, "rb")  # noqa: SIM115  (kept open while followed)
        except OSError as exc:
            logger.warning("cannot open %s: %s", self.target.path, exc)
            return False
        stat = os.fstat(handle.fileno())
        self.handle, self.identity = handle, _identity(stat)
        self.offset = handle.seek(0, os.SEEK_END) if at_end else 0
        self.partial = b""
        return True

    def _read(self, budget=None):
        """(lines, drained): complete lines read from the current position, and whether
        the end of the file was reached within `budget` bytes."""
        lines = []
        consumed = 0
        while budget is None or consumed < budget:
            data = self.handle.read(READ_SIZE)
            if not data:
                return lines, True
            consumed += len(data)
            self.offset += len(data)
            pieces = (self.partial + data).split(b"\n")
            self.partial = pieces.pop()
            lines.extend(_decode(piece) for piece in pieces)
            if len(self.partial) > MAX_LINE_BYTES:
                lines.append(_decode(self.partial))
                self.partial = b""
        return lines, False

    def close(self):
        if self.handle is not None:
            self.handle.close()
        self.handle = None
        self.identity = None


def _stat(path):
    try:
        return os.stat(path)
    except OSError:
        return None


def _identity(stat):
    return (stat.st_dev, stat.st_ino)


def _decode(data):
    return data.decode("utf-8", errors="replace").rstrip("\r")


class LogWatcher:
    """Follows `targets` and turns their new lines into processed raw logs.

    `poll()` reads; `flush(force=False)` stores and processes what was read once
    `interval` seconds passed since the last flush (or a batch got big); `step()` does
    both. `submit(target, lines)` (default: `store_and_process`) is what a flush calls per
    file with lines; `clock` is injectable for tests.
    """

    def __init__(
        self,
        targets,
        *,
        from_start=False,
        interval=2.0,
        max_batch_bytes=1024 * 1024,
        submit=None,
        clock=time.monotonic,
    ):
        if not targets:
            raise ValueError("nothing to watch: give at least one file")
        self.targets = list(targets)
        self.files = [_FollowedFile(target, from_start=from_start) for target in self.targets]
        self.interval = float(interval)
        self.max_batch_bytes = int(max_batch_bytes)
        self.submit = submit or store_and_process
        self.clock = clock
        self.pending = {target: [] for target in self.targets}
        self._pending_bytes = dict.fromkeys(self.targets, 0)
        self._last_flush = clock()
        self.lines_read = 0
        self.raw_logs_created = 0
        self.events_created = 0
        self.started_at = time.time()

    def poll(self):
        """Read every file (up to a batch's worth each); returns how many new lines were
        read. A file with more to read than that is read on by the next polls."""
        count = 0
        for followed in self.files:
            budget = max(READ_SIZE, self.max_batch_bytes - self._pending_bytes[followed.target])
            try:
                lines = [line for line in followed.poll(budget) if line.strip()]
            except OSError as exc:
                logger.warning("reading %s failed: %s", followed.target.path, exc)
                followed.close()
                continue
            self.pending[followed.target].extend(lines)
            self._pending_bytes[followed.target] += sum(len(line) + 1 for line in lines)
            count += len(lines)
        self.lines_read += count
        return count

    def flush(self, *, force=False):
        """Store and process the lines read, one raw log per file, when `interval` passed
        since the last flush, a batch reached `max_batch_bytes`, or `force`. Returns what
        `submit` returned for each batch."""
        due = force or self.clock() - self._last_flush >= self.interval
        results = []
        for target in self.targets:
            lines = self.pending[target]
            if not lines or not (due or self._pending_bytes[target] >= self.max_batch_bytes):
                continue
            self.pending[target], self._pending_bytes[target] = [], 0
            try:
                result = self.submit(target, lines)
            except Exception:
                logger.exception("storing %d lines of %s failed", len(lines), target.path)
                continue
            self.raw_logs_created += 1
            self.events_created += getattr(result, "events_created", 0) or 0
            results.append(result)
        if due:
            self._last_flush = self.clock()
        return results

    def step(self):
        self.poll()
        return self.flush()

    @property
    def has_backlog(self):
        """True when a file had more to read than the last poll took."""
        return any(followed.backlog for followed in self.files)

    def close(self):
        for followed in self.files:
            followed.close()

    def status(self):
        """The `file_monitor` component's metrics, for `system_status`."""
        missing = [f.target.path for f in self.files if f.missing]
        return {
            "files_monitored": len(self.files),
            "files_missing": len(missing),
            "lines_read": self.lines_read,
            "raw_logs_created": self.raw_logs_created,
            "events_processed": self.events_created,
        }, missing


def store_and_process(target, lines):
    """The default `submit`: one raw log of `lines` from `target`, processed now."""
    from incidents.ingest import receive_raw_log
    from incidents.processing import process_raw_log

    raw_log = receive_raw_log(
        source=target.source,
        content="\n".join(lines),
        file_name=target.path,
        actor=None,
        audit=False,
    )
    return process_raw_log(raw_log.pk)


class WatchService:
    """A `LogWatcher` in a daemon thread (the server process's watchers).

    Only the holder of `leader_lock` (a lease in the cache) watches, so several server
    processes configured alike read each line once. `health()` reports the `file_monitor`
    component to the monitor runner; without a runner, `system_status` for it goes out
    every `status_interval` seconds (None: never).
    """

    def __init__(self, targets, *, interval=2.0, status_interval=30.0, leader_lock=None):
        self.watcher = LogWatcher(targets, interval=interval)
        self.interval = float(interval)
        self.status_interval = status_interval
        self.leader_lock = leader_lock
        self.is_leader = leader_lock is None
        self._stop = threading.Event()
        self._thread = None
        self._next_status = 0.0

    def __repr__(self):
        return f"<WatchService {[t.path for t in self.watcher.targets]}>"

    def start(self):
        # Open the files at their ends now: a line written once start() returned is read.
        self.watcher.poll()
        self._thread = threading.Thread(target=self._run, name="log-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self):
        try:
            while not self._stop.is_set():
                try:
                    if self.leader_lock is not None:
                        self.is_leader = self.leader_lock.acquire()
                    if self.is_leader:
                        self.watcher.step()
                        self._publish_status()
                except Exception:
                    logger.exception("log watcher round failed")
                finally:
                    close_old_connections()
                if not self.watcher.has_backlog:
                    self._stop.wait(min(self.interval, 1.0))
            if self.is_leader:
                self.watcher.flush(force=True)
        finally:
            self.watcher.close()
            if self.leader_lock is not None and self.is_leader:
                try:
                    self.leader_lock.release()
                except Exception:
                    logger.warning("could not release the log watchers' lease")
            connections.close_all()

    def health(self):
        """The `file_monitor` component's health, for the monitor runner."""
        from threatlens.monitoring.health import CRITICAL, HEALTHY, WARNING, ComponentHealth

        metrics, missing = self.watcher.status()
        alive = self._thread is not None and self._thread.is_alive()
        if not alive:
            status, message = CRITICAL, "the log watcher thread is not running"
        elif not self.is_leader:
            status, message = HEALTHY, "standby: another server process watches the files"
        elif missing:
            status, message = WARNING, "missing: " + ", ".join(missing)
        else:
            status, message = HEALTHY, ""
        return ComponentHealth(
            component="file_monitor",
            status=status,
            metrics=metrics,
            message=message,
            uptime=round(time.time() - self.watcher.started_at, 1),
        )

    def _publish_status(self):
        if self.status_interval is None:
            return
        now = time.monotonic()
        if now < self._next_status:
            return
        self._next_status = now + float(self.status_interval)
        publish_file_monitor_status(self.watcher)


def publish_file_monitor_status(watcher):
    """`system_status` for the `file_monitor` component (threatlens-ws.md's example)."""
    from realtime.publishing import publish
    from threatlens.monitoring.events import system_status_data
    from threatlens.monitoring.health import HEALTHY, WARNING, ComponentHealth

    metrics, missing = watcher.status()
    health = ComponentHealth(
        "file_monitor",
        WARNING if missing else HEALTHY,
        metrics=metrics,
        message="missing: " + ", ".join(missing) if missing else "",
    )
    publish(
        "system_status",
        system_status_data(health, uptime=time.time() - watcher.started_at),
        priority=5 if missing else None,
    )
