"""This process's one processing worker: raw logs are processed one at a time, in the
order they were handed over.

    future = processing_worker().submit(fn, *args)   # run by the worker thread, later
    with processing_worker().turn():                 # the caller's thread, in its turn
        ...

Why one: the built-in and the Sigma rules keep their windows and claims in this
process's detection state (`processing.detection_state`). Two raw logs processed at the
same time interleave their chunks, and within a chunk their checks, in that state: what
is stored then matches the analyzer over no order of the raw logs. One worker fed in
arrival order (first in, first out) stores exactly what the analyzer alone finds over
the raw logs one after the other, in the order they were handed over (and so of their
`finished_at`). More threads would only wait for each other: parsing and analysis are
pure Python under one interpreter lock. Several processes (`manage.py process_logs`
beside the server, with Redis) are how processing scales out.

The worker thread runs the background jobs (an upload under LOG_PROCESSING=thread). A
caller that waits for its own raw log (an inline upload, the syslog sink's thread, a
watcher, a command, the resume pass) takes a `turn` instead: it queues like a job, the
worker stops there, and the caller processes in its own thread (whose connection may
hold a transaction the worker's would not see, a test's) until it hands the turn back.
Reentrant: the worker's own jobs and a thread already in its turn never wait for
themselves.
"""

import contextlib
import os
import queue
import threading
from concurrent.futures import Future


class ProcessingWorker:
    """One thread taking jobs and turns in the order they came (see the module
    docstring). The thread starts with the first job or turn."""

    def __init__(self):
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()  # starting the thread
        self._thread = None
        self._local = threading.local()  # `in_turn` of each calling thread

    def submit(self, fn, *args):
        """Run `fn(*args)` in the worker thread after everything queued before; returns
        a `concurrent.futures.Future` of its result."""
        future = Future()
        self._put((fn, args, future))
        return future

    @contextlib.contextmanager
    def turn(self):
        """Wait until everything queued before is done, then hold the worker (nothing
        else is processed in this process) until the block ends."""
        if self.holds_turn():
            yield
            return
        started, finished = threading.Event(), threading.Event()
        self._put((started, finished))
        try:
            started.wait()
            self._local.in_turn = True
            yield
        finally:
            # Also when interrupted while waiting: the worker must not wait for it.
            self._local.in_turn = False
            finished.set()

    def waiting(self):
        """How many jobs and turns wait to be taken (approximately, as `qsize`)."""
        return self._jobs.qsize()

    def holds_turn(self):
        """Whether the calling thread is the worker or holds a turn."""
        return threading.current_thread() is self._thread or getattr(self._local, "in_turn", False)

    def _put(self, item):
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="log-processing", daemon=True
                )
                self._thread.start()
        self._jobs.put(item)

    def _work(self):
        while True:
            item = self._jobs.get()
            if len(item) == 2:
                started, finished = item
                started.set()
                finished.wait()
            else:
                fn, args, future = item
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn(*args))
                    except BaseException as exc:  # the caller's to see, the worker goes on
                        future.set_exception(exc)


_worker = None
_worker_pid = None
_worker_lock = threading.Lock()


def processing_worker():
    """This process's worker (a forked child gets its own: threads do not survive a
    fork)."""
    global _worker, _worker_pid
    with _worker_lock:
        if _worker is None or _worker_pid != os.getpid():
            _worker, _worker_pid = ProcessingWorker(), os.getpid()
        return _worker
