"""The syslog child's side of its supervision (`manage.py run_syslog --supervised`).

The server starts `run_syslog --supervised` as its child process
(`incidents/syslog/supervisor.py`). The child then:

- exits when its parent is gone: its standard input is a pipe the parent never writes
  to and holds open, so end-of-file means the parent died (even by SIGKILL); it stops as
  on SIGTERM, storing what it received;
- reports its figures on standard output, one JSON line every `interval` seconds:
  `{"syslog_stats": <the receiver's stats()>, "ingest": <its ingest figures>}`, which the
  server shows as the `syslog_receiver` and `log_ingest` components and in `/metrics`.
"""

import asyncio
import json
import logging
import os
import sys

logger = logging.getLogger(__name__)

STATS_INTERVAL = 1.0  # seconds between two reports


def stop_when_parent_exits(stop):
    """Set `stop` (an asyncio.Event) at end-of-file on standard input (the running loop's
    thread)."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable():
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            logger.warning("the server that started this syslog child is gone: stopping")
            stop.set()

    loop.add_reader(fd, readable)


def stats_line(receiver):
    """One report: the receiver's counters and this process's ingest figures, as JSON."""
    from incidents.ingest_metrics import own_snapshot

    stats = receiver.stats()
    stats["started_at"] = receiver.started_at
    return json.dumps({"syslog_stats": stats, "ingest": own_snapshot()}, default=str)


async def report_stats(receiver, write, interval=STATS_INTERVAL):
    """Write a report now and then every `interval` seconds, until cancelled. Built in a
    thread: the figures of a shared detection state are read from Redis."""
    while True:
        try:
            write(await asyncio.to_thread(stats_line, receiver))
        except Exception:
            logger.exception("reporting the syslog child's figures failed")
        await asyncio.sleep(interval)
