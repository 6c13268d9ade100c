"""The syslog receiver on a server process's event loop (SYSLOG_IN_PROCESS with
SYSLOG_PROCESS=loop; the default runs it in a child process: `supervisor.py`).

`threatlens.monitoring.startup.start_in_process` starts a `SyslogService` on the
server's event loop when SYSLOG_IN_PROCESS is on, SYSLOG_PROCESS is `loop` and a
SYSLOG_*_PORT is set. Its ports
are its lease: when another process holds them (a second server process, or
`manage.py run_syslog`), this one says so once and tries again every `retry_interval`
seconds, so it takes over within that time when the holder stops.
"""

import asyncio
import logging
import time

from django.conf import settings

from incidents.syslog.server import ReceiverConfig, SyslogReceiver

logger = logging.getLogger(__name__)


def in_process_config():
    """The receiver's config when this server process should run it, else None."""
    if not getattr(settings, "SYSLOG_IN_PROCESS", False):
        return None
    config = ReceiverConfig.from_settings()
    return config if config.enabled else None


def describe(addresses):
    """`udp 127.0.0.1:5514, tcp 127.0.0.1:5514` for log lines and command output."""
    return ", ".join(f"{name} {address[0]}:{address[1]}" for name, address in addresses.items())


class SyslogService:
    """A SyslogReceiver started on the running loop, retrying while its ports are taken."""

    def __init__(self, config, sink, *, retry_interval=5.0):
        self.config = config
        self.sink = sink
        self.retry_interval = float(retry_interval)
        self.receiver = None
        self.error = ""
        self.started_at = time.time()
        self._task = None

    def __repr__(self):
        return f"<SyslogService {self.receiver!r}>"

    def start(self):
        """Start listening, from the loop's thread; returns at once."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="syslog-service")
        return self

    async def _run(self):
        while True:
            receiver = SyslogReceiver(self.sink, self.config)
            try:
                await receiver.start()
            except OSError as exc:
                if not self.error:
                    logger.warning(
                        "the syslog receiver cannot listen (%s); trying again every %g s",
                        exc,
                        self.retry_interval,
                    )
                self.error = str(exc)
                await asyncio.sleep(self.retry_interval)
                continue
            except Exception as exc:
                self.error = str(exc)
                logger.exception("the syslog receiver could not start")
                return
            self.receiver, self.error = receiver, ""
            logger.info("syslog receiver listening on %s", describe(receiver.addresses))
            return

    async def wait_listening(self, timeout=None):
        """Wait until the receiver listens (tests); True when it does."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.receiver is None:
            if self._task is not None and self._task.done():
                return False
            if deadline is not None and time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def stop(self):
        """Stop listening, and let the sink store what it holds."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self.receiver is not None:
            await self.receiver.stop()
            self.receiver = None
        close = getattr(self.sink, "close", None)
        if close is not None:
            await asyncio.to_thread(close)

    def health(self):
        """The `syslog_receiver` component, for the monitor runner."""
        if self.receiver is None:
            return receiver_health(None, error=self.error, started_at=self.started_at)
        return receiver_health(
            self.receiver.stats(),
            listening=self.receiver.addresses,
            started_at=self.receiver.started_at or self.started_at,
        )


def receiver_health(stats, *, listening=None, started_at, error="", **more):
    """The `syslog_receiver` component from a receiver's `stats()` (None: not listening,
    because of `error`); `more` metrics added."""
    from threatlens.monitoring.health import HEALTHY, WARNING, ComponentHealth

    if stats is None:
        return ComponentHealth(
            component="syslog_receiver",
            status=WARNING,
            message=f"not listening: {error or 'starting'}",
            uptime=round(time.time() - started_at, 1),
        )
    return ComponentHealth(
        component="syslog_receiver",
        status=HEALTHY,
        metrics={
            "messages_received": sum(stats["received"].values()),
            "messages_malformed": sum(stats["malformed"].values()),
            "udp_dropped": stats["udp_dropped"],
            "udp_kernel_drops": stats["udp_kernel_drops"],
            "connections_open": stats["connections_open"],
            "listening": describe(listening),
            **more,
        },
        uptime=round(time.time() - started_at, 1),
    )
