"""The sink's bounded queue: a wake-up of the consumer costs the same whatever is queued,
so a backlog of n batches costs O(n), not O(n²)."""

import sys
import threading
import time
from pathlib import Path

from incidents.syslog import line_queue
from incidents.syslog.line_queue import LineQueue
from incidents.syslog.sink import ReceivedLine
from tests.waiting import wait_until

LINE_QUEUE_FILE = str(Path(line_queue.__file__).resolve())


def line(n):
    return ReceivedLine(
        text=f"<13>1 - host app - - - line {n}", source="syslog", received_at=time.time(),
        transport="tcp", peer="192.0.2.1",
    )  # fmt: skip


class CountingCondition(threading.Condition):
    """The queue's condition, counting the consumer's waits (each wake-up ends one)."""

    def __init__(self, lock):
        super().__init__(lock)
        self.waits = 0

    def wait(self, timeout=None):
        self.waits += 1
        return super().wait(timeout)


def operations_for_a_backlog_of(batches):
    """Python lines of line_queue.py the consumer runs while `batches` one-line batches
    arrive one by one, the consumer woken by each (waiting for a fuller batch), then
    takes them all."""
    queue = LineQueue(max_lines=10**6, batch_lines=10**6, batch_bytes=10**9, batch_wait=300)
    queue._wakeup = CountingCondition(queue._lock)
    executed = [0]

    def trace(frame, event, _arg):
        if frame.f_code.co_filename != LINE_QUEUE_FILE:
            return None
        if event == "line":
            executed[0] += 1
        return trace

    taken = []

    def consume():
        sys.settrace(trace)
        try:
            taken.append(queue.take())
        finally:
            sys.settrace(None)

    queue.offer([line(0)])
    consumer = threading.Thread(target=consume)
    consumer.start()
    wait_until(lambda: queue._wakeup.waits == 1, "the consumer waiting", interval=0.001)
    for n in range(1, batches):
        queue.offer([line(n)])
        # One wake-up per batch: the next comes once the consumer waits again.
        wait_until(lambda n=n: queue._wakeup.waits == n + 1, f"wake-up {n}", interval=0.001)
    queue.close()
    consumer.join(10)
    assert sum(len(batch.lines) for batch in taken[0]) == batches
    return executed[0]


def test_a_wake_up_of_the_consumer_costs_the_same_whatever_is_queued():
    small, large = operations_for_a_backlog_of(100), operations_for_a_backlog_of(400)
    # Linear: four times the batches, four times the work (a rescan per wake-up: 16).
    assert large / small < 4.5, (small, large)


def test_batches_are_cut_by_lines_and_by_bytes():
    queue = LineQueue(max_lines=100, batch_lines=5, batch_bytes=10**6, batch_wait=0)
    for n in range(12):
        queue.offer([line(n)])
    assert [len(queue.take()) for _ in range(3)] == [5, 5, 2]

    size = line(0).text.__len__() + 1
    queue = LineQueue(max_lines=100, batch_lines=100, batch_bytes=3 * size, batch_wait=0)
    for n in range(7):
        queue.offer([line(n)])
    assert [len(queue.take()) for _ in range(3)] == [3, 3, 1]
