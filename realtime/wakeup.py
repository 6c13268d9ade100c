"""Waking this process's event-table poll when another process has stored events.

Without a shared channel layer, events stored by another process reach the hub through
its poll of the event table, every `REALTIME["EVENT_POLL_INTERVAL"]` (0.5 s). A process
the server starts itself (the syslog child, `incidents/syslog/supervisor.py`) gets one end
of a Unix datagram socket pair: after each commit of events it sends a byte
(`notify_hubs`), and the hub's poller (`realtime.sources.EventTablePoller`) polls at once
(`table_wakeups.wait`). Wake-ups are coalesced: all the bytes waiting are read at once
and make one poll. It fails safe both ways: a full socket drops the byte (a wake-up is
already waiting), a broken one is given up, and the poll interval still delivers.
"""

import asyncio
import logging
import os
import socket
import threading

logger = logging.getLogger(__name__)

ATTACH_CHECK = 0.5  # seconds between looks for a channel opened after the poll started


class TableWakeups:
    """The receiving end, in the server process: a socket pair whose other end is handed
    to child processes (`open()` returns its file descriptor), read on the loop of the
    first hub that waits."""

    def __init__(self):
        self._lock = threading.Lock()
        self._reader = self._writer = None
        self._loop = self._event = None
        self.received = 0  # datagrams read (tests, figures)

    def open(self):
        """Open the socket pair once; the descriptor of the end for children to write."""
        with self._lock:
            if self._reader is None:
                self._reader, self._writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._reader.setblocking(False)
            return self._writer.fileno()

    async def wait(self, timeout):
        """Sleep until a wake-up or `timeout` seconds; True when woken."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            event = self._attach(loop)
            if event is None:
                await asyncio.sleep(min(remaining, ATTACH_CHECK))
                continue
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                return False
            event.clear()
            return True
        return False

    def _attach(self, loop):
        """The event set on wake-ups, read on `loop`; None without a channel, or when
        another live loop reads it (that loop's hub then wakes, this one polls)."""
        with self._lock:
            if self._reader is None:
                return None
            if self._loop is None or self._loop.is_closed():
                loop.add_reader(self._reader.fileno(), self._readable)
                self._loop, self._event = loop, asyncio.Event()
            return self._event if self._loop is loop else None

    def _readable(self):
        try:
            while True:
                self._reader.recv(64)
                self.received += 1
        except BlockingIOError:
            pass
        except OSError as exc:
            logger.warning("hub wake-up channel broken (%s): the poll interval delivers", exc)
            self._loop.remove_reader(self._reader.fileno())
            event = self._event
            with self._lock:
                self._reader.close()
                self._reader = self._loop = self._event = None  # polled at the interval now
            event.set()
            return
        self._event.set()


table_wakeups = TableWakeups()


class HubNotifier:
    """The sending end, in a child process: `adopt(fd)` once at start, `notify()` after
    each commit of events."""

    def __init__(self):
        self._socket = None

    def adopt(self, fd):
        self._socket = socket.socket(fileno=fd)
        self._socket.setblocking(False)

    def notify(self):
        sock = self._socket
        if sock is None:
            return
        try:
            sock.send(b"!")
        except BlockingIOError:
            pass  # full: wake-ups are waiting already, one is enough
        except OSError as exc:
            # The server is gone or closed its end: the events are stored, and the poll
            # (or the next server's replay) still finds them.
            logger.warning("cannot wake the server's hub (%s); it polls instead", exc)
            self._socket = None
            sock.close()


hub_notifier = HubNotifier()


def adopt_wake_fd(fd):
    """Make this process wake the server's hub after its commits (`run_syslog
    --wake-fd`)."""
    os.set_inheritable(fd, False)
    hub_notifier.adopt(fd)


def notify_hubs():
    """Wake the server's hub, when this process was given a wake-up channel."""
    hub_notifier.notify()
