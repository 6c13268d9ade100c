"""Syslog test helpers: a recording sink (the intake interface), waits with a deadline,
and the lines stored in raw logs."""

import asyncio
from collections import Counter


class RecordingSink:
    """The intake interface, recording what it is given. With `capacity`, it holds at
    most that many lines until `release()` (a pipeline that has fallen behind)."""

    def __init__(self, capacity=None):
        self.capacity = capacity
        self.lines = []
        self.durable = []
        self.malformed = Counter()
        self.dropped = 0
        self._held = 0
        self._room = asyncio.Event()
        self.stored_before = []  # what `recent_durable_lines` answers (newest first)

    @property
    def texts(self):
        return [line.text for line in self.lines]

    def _fits(self, count):
        # A batch larger than the whole capacity goes in alone, as in the real intake.
        return self.capacity is None or self._held + count <= self.capacity or not self._held

    def offer(self, lines):
        lines = list(lines)
        room = len(lines) if self.capacity is None else max(0, self.capacity - self._held)
        taken = lines[:room]
        self._take(taken)
        self.dropped += len(lines) - len(taken)
        return len(taken)

    async def put(self, lines):
        lines = list(lines)
        while not self._fits(len(lines)):
            self._room.clear()
            await self._room.wait()
        self._take(lines)

    async def put_durable(self, lines):
        await self.put(lines)
        self.durable.extend(lines)

    def count_malformed(self, n=1, *, transport):
        self.malformed[transport] += n

    def stats(self):
        return {"held": self._held, "dropped": self.dropped}

    async def recent_durable_lines(self, *, transport, peer, limit):
        stored = [line.text for line in reversed(self.durable) if line.peer == peer]
        return (stored + self.stored_before)[:limit]

    def release(self):
        """The pipeline caught up: everything held is processed."""
        self._held = 0
        self._room.set()

    def _take(self, lines):
        self.lines.extend(lines)
        self._held += len(lines)


async def eventually(condition, timeout=5.0):
    """Wait until `condition()` is true; False when `timeout` passes first."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def in_thread(function, *args):
    """`function(*args)` in a worker thread whose database connection is closed after.

    `asyncio.to_thread` keeps each worker's connection open; each test has a loop (and so
    workers) of its own, and on PostgreSQL every such connection holds one of the
    process's pooled connections until the garbage collector finds it."""

    def call():
        from django.db import connections

        try:
            return function(*args)
        finally:
            connections.close_all()

    return await asyncio.to_thread(call)


def stored_lines(file_name=None):
    """Every line stored in raw logs (of `file_name` only, when given), in order."""
    from incidents.models import RawLog

    logs = RawLog.objects.order_by("id")
    if file_name is not None:
        logs = logs.filter(file_name=file_name)
    return [
        line for content in logs.values_list("content", flat=True) for line in content.split("\n")
    ]


async def stored(predicate, timeout=15.0, file_name=None):
    """Wait until `predicate(stored lines)` holds; False when `timeout` passes first."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate(await in_thread(stored_lines, file_name)):
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
