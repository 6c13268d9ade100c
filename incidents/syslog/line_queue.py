"""The bounded queue between the receiver's event loop and the thread that stores lines.

    queue = LineQueue(max_lines=20_000, batch_lines=5_000, batch_bytes=4 MiB, batch_wait=0.2)
    queue.offer(lines) -> int                  # never blocks: how many fit (UDP)
    await queue.put(lines, durable=False)      # waits for room (TCP, TLS: backpressure)
    await queue.put(lines, durable=True)       # ... and until the batch is settled (RELP)
    batches = queue.take()                     # the consumer thread: the next batches
    batch.settle(error)                        # stored (None) or not: wakes a durable put
    queue.release(count)                       # those lines are done: room for more

It counts a line from the moment it is queued until the consumer releases it, so the
room it gives is what the whole pipeline behind it holds, not only what waits in it.
"""

import asyncio
import contextlib
import threading
import time
from collections import deque


class SinkClosed(RuntimeError):
    """The sink was closed: no more lines are taken."""


class Batch:
    """Lines handed over together; `done` (a future of `loop`) is resolved once they are
    stored, for a sender waiting for that (RELP). `size`: their bytes as `take` counts
    them (each line's text and a separator), worked out once."""

    __slots__ = ("done", "lines", "loop", "size")

    def __init__(self, lines, loop=None, done=None):
        self.lines = lines
        self.loop = loop
        self.done = done
        self.size = sum(len(line.text) + 1 for line in lines)

    def settle(self, error):
        """Tell a waiting durable sender its lines are stored (`error` None) or not."""
        if self.done is None:
            return
        if error is None:
            call_soon(self.loop, _succeed, self.done)
        else:
            call_soon(self.loop, _fail, self.done, error)


class LineQueue:
    """At most `max_lines` lines held (queued, or taken and not released yet); `take`
    hands them over in batches bounded in lines (`batch_lines`), bytes (`batch_bytes`)
    and time (a batch that is not full waits until its oldest line is `batch_wait`
    seconds old, unless a durable sender waits for it). Thread-safe: producers run on
    event loops, the consumer in a thread."""

    def __init__(self, *, max_lines, batch_lines, batch_bytes, batch_wait):
        self.max_lines = int(max_lines)
        self.batch_lines = int(batch_lines)
        self.batch_bytes = int(batch_bytes)
        self.batch_wait = float(batch_wait)
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._queue = deque()
        # What the consumer's wake-ups ask of the queued batches, kept as they come and go
        # (a rescan per wake-up cost O(queued) each, O(n²) under a backlog): their lines,
        # and how many have a durable sender waiting.
        self._queued_lines = 0
        self._queued_durable = 0
        self._held = 0
        self._waiting = []  # (loop, future) of `put` calls waiting for room
        self._closed = False
        self.accepted = 0
        self.dropped = 0
        # received_at of the oldest line taken and not released yet, None when idle.
        self._working_since = None

    @property
    def closed(self):
        return self._closed

    # -- producers ------------------------------------------------------------------------------

    def offer(self, lines):
        """Queue what fits of `lines` at once, drop (and count) the rest; how many fit."""
        lines = list(lines)
        with self._lock:
            if self._closed:
                self.dropped += len(lines)
                return 0
            room = max(0, self.max_lines - self._held)
            taken = lines[:room]
            if taken:
                self._enqueue(Batch(taken))
            self.accepted += len(taken)
            self.dropped += len(lines) - len(taken)
        return len(taken)

    async def put(self, lines, *, durable):
        """Queue `lines` once there is room for them; `durable`: and return once the
        consumer settled them. Raises SinkClosed once closed."""
        lines = list(lines)
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
                    self._enqueue(Batch(lines, loop, done))
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
        self._queued_lines += len(batch.lines)
        self._queued_durable += batch.done is not None
        self._wakeup.notify()

    def _dequeue(self):
        # Called with the lock held.
        batch = self._queue.popleft()
        self._queued_lines -= len(batch.lines)
        self._queued_durable -= batch.done is not None
        return batch

    # -- the consumer -----------------------------------------------------------------------------

    def take(self):
        """The next batches (waits for some), or None once closed and empty."""
        with self._lock:
            while not self._queue:
                if self._closed:
                    return None
                self._wakeup.wait(1.0)
            self._wait_for_a_fuller_batch()
            taken, count, size = [], 0, 0
            while self._queue and (not taken or count < self.batch_lines):
                batch = self._queue[0]
                if taken and size + batch.size > self.batch_bytes:
                    break
                taken.append(self._dequeue())
                count += len(batch.lines)
                size += batch.size
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
            if self._queued_durable:
                return  # a durable sender waits for its acknowledgement
            if self._queued_lines >= self.batch_lines:
                return
            if self._held >= self.max_lines:
                return  # full: waiting frees no room
            remaining = deadline - time.time()
            if remaining <= 0:
                return
            self._wakeup.wait(remaining)

    def release(self, count):
        """`count` taken lines are done with: their room goes to waiting producers."""
        with self._lock:
            self._held -= count
            self._working_since = None
            waiting, self._waiting = self._waiting, []
        for loop, future in waiting:
            call_soon(loop, _succeed, future)

    # -- closing and figures ----------------------------------------------------------------------

    def close(self):
        """Take no more lines; producers waiting for room get SinkClosed. What is queued
        is still taken."""
        with self._lock:
            self._closed = True
            self._wakeup.notify_all()
            waiting, self._waiting = self._waiting, []
        for loop, future in waiting:
            call_soon(loop, _fail, future, SinkClosed("the sink is closed"))

    def stats(self):
        """held, capacity, accepted, dropped, and `lag_seconds`: how long the oldest line
        not released yet has waited."""
        with self._lock:
            return {
                "held": self._held,
                "capacity": self.max_lines,
                "accepted": self.accepted,
                "dropped": self.dropped,
                "lag_seconds": self._lag(),
            }

    def _lag(self):
        # Called with the lock held.
        oldest = [since for since in (self._working_since,) if since is not None]
        if self._queue and self._queue[0].lines:
            oldest.append(self._queue[0].lines[0].received_at)
        return round(max(0.0, time.time() - min(oldest)), 3) if oldest else 0.0

    def __repr__(self):
        return f"<LineQueue held={self._held}/{self.max_lines}>"


def call_soon(loop, callback, *args):
    """`callback(*args)` on `loop`'s thread; nothing when the loop is closed (nobody
    waits any more)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


def _succeed(future):
    if not future.done():
        future.set_result(None)


def _fail(future, error):
    if not future.done():
        future.set_exception(error)
