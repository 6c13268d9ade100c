"""Where received lines go: the intake interface, and a small sink on what exists today.

The receiver hands lines to a sink (`get_sink()`), which offers:

    sink.offer(lines) -> int            # never blocks; how many were accepted (UDP)
    await sink.put(lines)               # waits for room (TCP and TLS: backpressure)
    await sink.put_durable(lines)       # returns once stored durably (RELP acks after it)
    sink.count_malformed(n, transport=) # oversized and binary messages
    sink.stats() -> dict
    await sink.recent_durable_lines(transport=, peer=, limit=)   # optional, for RELP

`recent_durable_lines` returns the texts of the last lines stored from `peer` over
`transport` (newest first); the RELP receiver uses it to recognise frames a sender sends
again after a crash (see `incidents.syslog.relp`). A sink without it gets RELP's own
guarantee, at least once.

`RawLogSink` is the interim sink: lines are stored as raw logs and processed by
`incidents.processing`, as the log watcher does. The intake of `incidents.intake`
(batched pipeline, durable queue) replaces it: `get_sink()` is the one place to switch.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from django.db import close_old_connections, connections, transaction

logger = logging.getLogger(__name__)

try:
    from incidents.intake import ReceivedLine
except ImportError:

    @dataclass(frozen=True, slots=True)
    class ReceivedLine:
        """One received log line, as the parsers take it, with where it came from."""

        text: str  # one log line (a syslog message's full text)
        source: str  # source hint for parse_line ("syslog", "sshd", "nginx", ...)
        received_at: float  # time.time() when received
        transport: str  # "udp", "tcp", "tls", "relp", "api", "file", "command"
        peer: str = ""  # sender address, "" if none


class SinkClosed(RuntimeError):
    """The sink was closed: no more lines are taken."""


def origin_name(transport, peer):
    """The `file_name` of the raw logs a transport's lines from `peer` are stored in."""
    return f"{transport}://{peer or '-'}"


class _Batch:
    __slots__ = ("done", "lines", "loop")

    def __init__(self, lines, loop=None, done=None):
        self.lines = lines
        self.loop = loop
        self.done = done  # an asyncio future of `loop`, resolved once stored


class RawLogSink:
    """Stores received lines as raw logs and processes them, in a worker thread.

    At most `max_lines` lines are held (queued, or stored and being processed): `offer`
    takes what fits, `put` waits for room. The worker takes everything queued (up to
    `batch_lines` lines or `batch_bytes`; a batch that is not full waits until its oldest
    line is `batch_wait` seconds old, so a trickle of lines is not stored and processed one
    tiny batch at a time, unless a sender waits for its lines to be stored: RELP), stores
    it in one transaction as one raw log
    per source, transport and peer, resolves the `put_durable` calls it held, then
    processes those raw logs with `incidents.processing.process_raw_log`. Room frees up
    once lines are processed, so a pipeline that falls behind slows TCP senders down.
    """

    def __init__(
        self,
        *,
        max_lines=20_000,
        batch_lines=5_000,
        batch_bytes=4 * 1024 * 1024,
        batch_wait=0.2,
        process=True,
    ):
        self.max_lines = int(max_lines)
        # False: only store; processing workers (`manage.py process_logs`) take the raw
        # logs from the database (room frees up once stored, not once processed).
        self.process = bool(process)
        self.batch_lines = int(batch_lines)
        self.batch_bytes = int(batch_bytes)
        self.batch_wait = float(batch_wait)
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._queue = deque()
        self._held = 0
        self._waiting = []  # (loop, future) of `put` calls waiting for room
        self._closed = False
        self._thread = None
        self.accepted = 0
        self.dropped = 0
        self.stored = 0
        self.processed = 0
        self.store_failures = 0
        self.malformed = {}
        # received_at of the oldest line taken for storing and processing, None when idle.
        self._working_since = None

    def __repr__(self):
        return f"<RawLogSink held={self._held}/{self.max_lines}>"

    # -- the intake interface -------------------------------------------------------------------

    def offer(self, lines):
        lines = list(lines)
        with self._lock:
            if self._closed:
                self.dropped += len(lines)
                return 0
            room = max(0, self.max_lines - self._held)
            taken = lines[:room]
            if taken:
                self._enqueue(_Batch(taken))
            self.accepted += len(taken)
            self.dropped += len(lines) - len(taken)
        return len(taken)

    async def put(self, lines):
        await self._put(list(lines), durable=False)

    async def put_durable(self, lines):
        await self._put(list(lines), durable=True)

    def count_malformed(self, n=1, *, transport):
        with self._lock:
            self.malformed[transport] = self.malformed.get(transport, 0) + n

    def stats(self):
        with self._lock:
            return {
                "held": self._held,
                "capacity": self.max_lines,
                "accepted": self.accepted,
                "dropped": self.dropped,
                "stored": self.stored,
                "processed": self.processed,
                "store_failures": self.store_failures,
                "malformed": dict(self.malformed),
                "lag_seconds": self._lag(),
            }

    def _lag(self):
        # Called with the lock held: how long the oldest line not yet processed has waited.
        oldest = [since for since in (self._working_since,) if since is not None]
        if self._queue and self._queue[0].lines:
            oldest.append(self._queue[0].lines[0].received_at)
        return round(max(0.0, time.time() - min(oldest)), 3) if oldest else 0.0

    async def recent_durable_lines(self, *, transport, peer, limit):
        return await asyncio.to_thread(self._recent_lines, origin_name(transport, peer), limit)

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def closed(self):
        return self._closed

    def close(self, timeout=10.0):
        """Take no more lines; store and process what is queued (within `timeout`)."""
        with self._lock:
            self._closed = True
            self._wakeup.notify_all()
            waiting, self._waiting = self._waiting, []
            thread = self._thread
        for loop, future in waiting:
            _call_soon(loop, _fail, future, SinkClosed("the sink is closed"))
        if thread is not None:
            thread.join(timeout)

    # -- inside ---------------------------------------------------------------------------------

    async def _put(self, lines, *, durable):
        if not lines:
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future() if durable else None
        while True:
            with self._lock:
                if self._closed:
                    raise SinkClosed("the sink is closed")
                # A batch larger than the whole capacity goes in alone, once all is done.
                if self._held + len(lines) <= self.max_lines or self._held == 0:
                    self._enqueue(_Batch(lines, loop, done))
                    self.accepted += len(lines)
                    break
                room = loop.create_future()
                self._waiting.append((loop, room))
            await room
        if done is not None:
            await done

    def _enqueue(self, batch):
        # Called with the lock held.
        self._queue.append(batch)
        self._held += len(batch.lines)
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="syslog-sink", daemon=True)
            self._thread.start()
        self._wakeup.notify()

    def _take(self):
        """The next batches to store (waits for some), or None once closed and empty."""
        with self._lock:
            while not self._queue:
                if self._closed:
                    return None
                self._wakeup.wait(1.0)
            self._wait_for_a_fuller_batch()
            taken, count, size = [], 0, 0
            while self._queue and (not taken or count < self.batch_lines):
                batch = self._queue[0]
                batch_size = sum(len(line.text) + 1 for line in batch.lines)
                if taken and size + batch_size > self.batch_bytes:
                    break
                taken.append(self._queue.popleft())
                count += len(batch.lines)
                size += batch_size
            self._working_since = min(
                (batch.lines[0].received_at for batch in taken if batch.lines), default=None
            )
            return taken

    def _wait_for_a_fuller_batch(self):
        # Called with the lock held and something queued. Time-bounded batching: each
        # batch costs a transaction, a raw log per origin and a publish, whatever its size.
        if self.batch_wait <= 0 or not self._queue[0].lines:
            return
        deadline = self._queue[0].lines[0].received_at + self.batch_wait
        while not self._closed:
            if any(batch.done is not None for batch in self._queue):
                return  # a durable sender waits for its acknowledgement
            if sum(len(batch.lines) for batch in self._queue) >= self.batch_lines:
                return
            if self._held >= self.max_lines:
                return  # full: waiting frees no room
            remaining = deadline - time.time()
            if remaining <= 0:
                return
            self._wakeup.wait(remaining)

    def _work(self):
        try:
            while (batches := self._take()) is not None:
                count = sum(len(batch.lines) for batch in batches)
                try:
                    close_old_connections()
                    raw_logs = self._store(batches)
                except Exception as exc:
                    logger.exception("storing %d received lines failed", count)
                    with self._lock:
                        self.store_failures += count
                    self._resolve(batches, exc)
                    self._release(count)
                    continue
                with self._lock:
                    self.stored += count
                self._resolve(batches, None)
                if self.process:
                    self._process(raw_logs)
                    with self._lock:
                        self.processed += count
                self._release(count)
                # Give the connection back between batches (on PostgreSQL, to the pool).
                close_old_connections()
        finally:
            connections.close_all()

    def _store(self, batches):
        from incidents.conf import pipeline_setting
        from incidents.ingest import receive_raw_log

        # A raw log holds at most LOG_UPLOAD_MAX_BYTES (a line is at most the receiver's
        # message size, far below it).
        limit = pipeline_setting("LOG_UPLOAD_MAX_BYTES")
        groups = {}
        for batch in batches:
            for line in batch.lines:
                chunks = groups.setdefault((line.source, line.transport, line.peer), [[0]])
                size = len(line.text.encode()) + 1
                if chunks[-1][0] + size > limit and len(chunks[-1]) > 1:
                    chunks.append([0])
                chunks[-1][0] += size
                chunks[-1].append(line.text)
        with transaction.atomic():
            return [
                receive_raw_log(
                    source=source,
                    content="\n".join(chunk[1:]),
                    file_name=origin_name(transport, peer),
                    actor=None,
                    audit=False,
                )
                for (source, transport, peer), chunks in groups.items()
                for chunk in chunks
            ]

    def _process(self, raw_logs):
        from incidents.processing import process_raw_log

        for raw_log in raw_logs:
            try:
                process_raw_log(raw_log.pk)
            except Exception:
                logger.exception("processing raw log %s of received lines failed", raw_log.pk)

    def _resolve(self, batches, error):
        for batch in batches:
            if batch.done is not None:
                if error is None:
                    _call_soon(batch.loop, _succeed, batch.done)
                else:
                    _call_soon(batch.loop, _fail, batch.done, error)

    def _release(self, count):
        with self._lock:
            self._held -= count
            self._working_since = None
            waiting, self._waiting = self._waiting, []
        for loop, future in waiting:
            _call_soon(loop, _succeed, future)

    def _recent_lines(self, file_name, limit):
        from incidents.models import RawLog

        lines = []
        contents = (
            RawLog.objects.filter(file_name=file_name)
            .order_by("-id")
            .values_list("content", flat=True)
        )
        try:
            for content in contents.iterator(chunk_size=20):
                lines.extend(reversed(content.split("\n")))
                if len(lines) >= limit:
                    break
        finally:
            # An executor thread: give the connection back (PostgreSQL's pool counts it).
            connections.close_all()
        return lines[:limit]


def _call_soon(loop, callback, *args):
    # A closed loop has nobody waiting any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


def _succeed(future):
    if not future.done():
        future.set_result(None)


def _fail(future, error):
    if not future.done():
        future.set_exception(error)


_sink = None
_sink_lock = threading.Lock()


def current_sink():
    """This process's sink if one was created (for metrics: never creates one)."""
    return _sink


def get_sink(*, process=True):
    """This process's sink for received lines (created on first use, and again after
    it was closed). `process=False`: it only stores (see `RawLogSink`)."""
    global _sink
    with _sink_lock:
        if _sink is None or _sink.closed:
            _sink = RawLogSink(process=process)
        return _sink
