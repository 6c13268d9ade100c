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
import logging
import threading
from dataclasses import dataclass

from django.db import close_old_connections, connections, transaction

from incidents.syslog.line_queue import LineQueue, SinkClosed

logger = logging.getLogger(__name__)
CLOSE_TIMEOUT = 60.0  # seconds a stopping sink gives what it holds to be stored and processed

__all__ = ["RawLogSink", "ReceivedLine", "SinkClosed", "get_sink", "origin_name"]

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


def origin_name(transport, peer):
    """The `file_name` of the raw logs a transport's lines from `peer` are stored in."""
    return f"{transport}://{peer or '-'}"


class RawLogSink:
    """Stores received lines as raw logs and processes them, in a worker thread.

    At most `max_lines` lines are held (queued, or stored and being processed): `offer`
    takes what fits, `put` waits for room (the bounded queue and its batching:
    `LineQueue`). The worker takes everything queued (up to `batch_lines` lines or
    `batch_bytes`; a batch that is not full waits until its oldest line is `batch_wait`
    seconds old, so a trickle of lines is not stored and processed one tiny batch at a
    time, unless a sender waits for its lines to be stored: RELP), stores it in one
    transaction as one raw log per source, transport and peer (`store_lines`), settles
    the `put_durable` calls it held, then processes those raw logs with
    `incidents.processing.process_raw_log`. Room frees up once lines are processed, so a
    pipeline that falls behind slows TCP senders down.
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
        self.queue = LineQueue(
            max_lines=max_lines,
            batch_lines=batch_lines,
            batch_bytes=batch_bytes,
            batch_wait=batch_wait,
        )
        # False: only store; processing workers (`manage.py process_logs`) take the raw
        # logs from the database (room frees up once stored, not once processed).
        self.process = bool(process)
        self._lock = threading.Lock()  # the counters below, and starting the worker
        self._thread = None
        self.stored = 0
        self.processed = 0
        self.store_failures = 0
        self.malformed = {}

    def __repr__(self):
        return f"<RawLogSink {self.queue!r}>"

    # -- the intake interface -------------------------------------------------------------------

    def offer(self, lines):
        self._start_worker()
        return self.queue.offer(lines)

    async def put(self, lines):
        self._start_worker()
        await self.queue.put(lines, durable=False)

    async def put_durable(self, lines):
        self._start_worker()
        await self.queue.put(lines, durable=True)

    def count_malformed(self, n=1, *, transport):
        with self._lock:
            self.malformed[transport] = self.malformed.get(transport, 0) + n

    def stats(self):
        queue = self.queue.stats()
        with self._lock:
            return {
                "held": queue["held"],
                "capacity": queue["capacity"],
                "accepted": queue["accepted"],
                "dropped": queue["dropped"],
                "stored": self.stored,
                "processed": self.processed,
                "store_failures": self.store_failures,
                "malformed": dict(self.malformed),
                "lag_seconds": queue["lag_seconds"],
            }

    async def recent_durable_lines(self, *, transport, peer, limit):
        return await asyncio.to_thread(recent_lines, origin_name(transport, peer), limit)

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def closed(self):
        return self.queue.closed

    def close(self, timeout=CLOSE_TIMEOUT):
        """Take no more lines; store and process what is queued (within `timeout`: the
        queue holds at most `max_lines`, seconds of work at the rates of bench/RESULTS.md)."""
        self.queue.close()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning(
                    "the syslog sink did not finish in %g s: lines still queued are not "
                    "stored (RELP senders send them again)",
                    timeout,
                )

    # -- the worker -------------------------------------------------------------------------------

    def _start_worker(self):
        # Started with the first lines, not with the sink (most processes never get any).
        if self._thread is not None or self.queue.closed:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="syslog-sink", daemon=True)
                self._thread.start()

    def _work(self):
        try:
            while (batches := self.queue.take()) is not None:
                self._handle(batches)
                # Give the connection back between batches (on PostgreSQL, to the pool).
                close_old_connections()
        finally:
            connections.close_all()

    def _handle(self, batches):
        count = sum(len(batch.lines) for batch in batches)
        try:
            close_old_connections()
            raw_logs = store_lines(batches)
        except Exception as exc:
            logger.exception("storing %d received lines failed", count)
            with self._lock:
                self.store_failures += count
            for batch in batches:
                batch.settle(exc)
            self.queue.release(count)
            return
        with self._lock:
            self.stored += count
        for batch in batches:
            batch.settle(None)
        if self.process:
            process_stored(raw_logs)
            with self._lock:
                self.processed += count
        self.queue.release(count)


# -- the raw logs ---------------------------------------------------------------------------------


def store_lines(batches):
    """Store the lines of `batches` in one transaction, as one raw log per source,
    transport and peer (more when one would exceed LOG_UPLOAD_MAX_BYTES); returns them."""
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


def process_stored(raw_logs):
    """Process `raw_logs` in order, in one turn of this process's processing worker (no
    upload comes between them), claimed in one transaction; a failure is logged, and the
    next one goes on."""
    from incidents.processing import process_raw_logs

    try:
        process_raw_logs([raw_log.pk for raw_log in raw_logs])
    except Exception:
        logger.exception("processing %d raw logs of received lines failed", len(raw_logs))


def recent_lines(file_name, limit):
    """The texts of the last `limit` lines stored in raw logs named `file_name`, newest
    first (in a thread of its own: it gives its connection back)."""
    from incidents.models import RawLog

    lines = []
    contents = (
        RawLog.objects.filter(file_name=file_name).order_by("-id").values_list("content", flat=True)
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
