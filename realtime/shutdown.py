"""Graceful shutdown on SIGTERM: tell clients to reconnect (close 1012), then let the server
stop as it would have.

The hub puts its handler in front of the server's (daphne's Twisted reactor and uvicorn
both install theirs with `signal.signal`) when it starts in the main thread. On SIGTERM it
stops accepting sockets, sends every live socket a `server_shutdown` notice and closes it
with 1012 (Service Restart), waits for that within a bound, then hands the signal to the
server's own handler, which stops the process.
"""

import asyncio
import contextlib
import logging
import os
import signal
import threading

from django.conf import settings

from realtime import auditing

logger = logging.getLogger(__name__)

CLOSE_SERVICE_RESTART = 1012


def install(hub):
    """Chain the hub's SIGTERM handler before the server's (main thread only)."""
    if not settings.REALTIME["HANDLE_SIGTERM"]:
        return
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        if hub.shutting_down:
            return _hand_over(previous, signum, frame)
        hub.shutting_down = True
        loop.call_soon_threadsafe(
            lambda: loop.create_task(_shut_down(hub, previous, signum, frame))
        )

    signal.signal(signal.SIGTERM, on_sigterm)


async def _shut_down(hub, previous, signum, frame):
    timeout = settings.REALTIME["SHUTDOWN_TIMEOUT"]
    connections = list(hub.connections.values())
    logger.info("SIGTERM: closing %d sockets with 1012 before stopping", len(connections))
    closes = [
        connection.owner.server_restart()
        for connection in connections
        if connection.owner is not None
    ]
    if closes:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.gather(*closes, return_exceptions=True)
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2):
            await auditing.flush_all()  # the closed sockets' rows, written in the background
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1):
            await hub.stop()
    _hand_over(previous, signum, frame)


def _hand_over(previous, signum, frame):
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
