"""Running the monitors, log watchers and syslog receiver inside the server process.

In the embedded default (no REDIS_URL) there is one server process and no separate
`manage.py run_monitors`, so the server runs them itself: `MONITORS_IN_PROCESS` (default:
on when REDIS_URL is unset) starts the monitor runner on the server's event loop, and
`WATCH_LOGS` (default: empty) starts the log watchers in a thread. Both start once per
process (the runner's leader lease and the watchers' lease keep several processes from
publishing twice when they share a cache). `SYSLOG_IN_PROCESS` (the same default) with a
`SYSLOG_*_PORT` starts the syslog receiver: in a supervised `run_syslog` child process
(`SYSLOG_PROCESS=child`, the default) or on the event loop (`loop`); its ports are its
lease.

Two ways to start them:

- `InProcessServicesMiddleware(application)` around the ASGI application: starts them on
  the ASGI lifespan startup (uvicorn) or, for servers without lifespan (daphne), on the
  first HTTP request or WebSocket connection; stops them on lifespan shutdown.
- `start_in_process(loop)` from any other start-up hook, `await stop_in_process()` at the
  end.
"""

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from asgiref.sync import markcoroutinefunction
from django.conf import settings
from django.db import close_old_connections, connections

logger = logging.getLogger(__name__)


def monitors_in_process():
    """True when this server process should run the monitors (MONITORS_IN_PROCESS,
    default: when there is no REDIS_URL, i.e. no `run_monitors` next to the server)."""
    return bool(getattr(settings, "MONITORS_IN_PROCESS", not settings.REDIS_URL))


def watch_targets():
    """The `WatchTarget`s of WATCH_LOGS (items `path` or `source=path`)."""
    from incidents.conf import pipeline_setting
    from incidents.watcher import WatchTarget

    specs = pipeline_setting("WATCH_LOGS") or []
    if isinstance(specs, str):
        specs = [item for item in specs.split(",") if item.strip()]
    return [WatchTarget.parse(spec) for spec in specs]


def _publish_sync(event_type, data, *, priority=None):
    from realtime.publishing import publish

    # The thread keeps its connection between calls; a stale one is replaced first.
    close_old_connections()
    return publish(event_type, data, priority=priority)


class MonitorPublisher:
    """`realtime.publishing.publish` for the monitor runner: an async callable that runs
    the (sync, database-writing) publish in a thread of its own, never in the server's
    shared sync thread that serves sync views. One thread, so one database connection,
    closed by `aclose()`."""

    def __init__(self):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="monitor-publish")

    async def publish(self, event_type, data, *, priority=None):
        await asyncio.get_running_loop().run_in_executor(
            self._executor, partial(_publish_sync, event_type, data, priority=priority)
        )

    async def aclose(self):
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, connections.close_all)
        finally:
            self._executor.shutdown(wait=False)


class InProcessServices:
    """What `start_in_process` started in this process."""

    def __init__(self, loop):
        self.loop = loop
        self.runner = None
        self.publisher = None
        self.watch_service = None
        self.syslog = None

    def __repr__(self):
        return (
            f"<InProcessServices runner={self.runner!r} watchers={self.watch_service!r} "
            f"syslog={self.syslog!r}>"
        )


_services = None
_lock = threading.Lock()


def running_services():
    """The services started in this process, or None."""
    return _services


def start_in_process(loop=None):
    """Start the monitors (MONITORS_IN_PROCESS), log watchers (WATCH_LOGS) and syslog
    receiver (SYSLOG_IN_PROCESS) of this process, once: later calls return the same
    `InProcessServices` (or None when none is configured). `loop` is the server's event
    loop (default: the running one); the call may come from that loop or from another
    thread."""
    global _services
    current = _services
    if current is not None and not current.loop.is_closed():
        return current
    from incidents.syslog.service import in_process_config

    run_monitors = monitors_in_process()
    targets = watch_targets()
    syslog_config = in_process_config()
    if not run_monitors and not targets and syslog_config is None:
        return None
    with _lock:
        if _services is not None and not _services.loop.is_closed():
            return _services
        loop = loop or asyncio.get_running_loop()
        services = InProcessServices(loop)
        if run_monitors:
            from threatlens.monitoring.runner import build_default_runner

            services.publisher = MonitorPublisher()
            services.runner = build_default_runner(services.publisher.publish)
            _add_ingest_check(services.runner, len(targets))
        if targets:
            services.watch_service = _start_watchers(targets, services.runner)
        if syslog_config is not None:
            services.syslog = _start_syslog(loop, syslog_config, services.runner)
        # A syslog child resumes the raw logs itself (run_syslog does): two processes
        # resuming at once would split them between two detection states.
        _resume_interrupted_work(raw_logs=not _is_child(services.syslog))
        if services.runner is not None:
            _call_in_loop(loop, services.runner.start)
            logger.info("monitors started in this server process")
        _services = services
        return services


def _is_child(syslog):
    from incidents.syslog.supervisor import SyslogChildProcess

    return isinstance(syslog, SyslogChildProcess)


def _resume_interrupted_work(*, raw_logs):
    from incidents.conf import pipeline_setting
    from incidents.processing import resume_in_background

    if pipeline_setting("RESUME_RAW_LOGS"):
        from dns.bulk import fail_interrupted_in_background

        if raw_logs:
            resume_in_background()
        fail_interrupted_in_background()


def _add_ingest_check(runner, files_monitored):
    from incidents.ingest_metrics import log_ingest_health

    interval = getattr(settings, "MONITORS", {}).get("CHECK_INTERVAL", 15.0)
    runner.add_check(
        "log_ingest",
        lambda: log_ingest_health(files_monitored=lambda: files_monitored),
        interval=interval,
    )


def _start_watchers(targets, runner):
    from incidents.conf import pipeline_setting
    from incidents.watcher import WatchService
    from threatlens.monitoring.leader import CacheLeaderLock

    service = WatchService(
        targets,
        interval=pipeline_setting("WATCH_LOGS_INTERVAL"),
        # With the runner here, its `file_monitor` check reports the watchers' health.
        status_interval=None if runner is not None else 30.0,
        leader_lock=CacheLeaderLock("watchers:leader", ttl=30),
    )
    if runner is not None:
        config = getattr(settings, "MONITORS", {})
        runner.add_check(
            "file_monitor", service.health, interval=config.get("CHECK_INTERVAL", 15.0)
        )
    service.start()
    logger.info("watching %s", ", ".join(f"{t.path} ({t.source})" for t in targets))
    return service


def _start_syslog(loop, config, runner):
    """The receiver in a supervised child process (SYSLOG_PROCESS=child, the default:
    its parsing and detection then leave the hub's interpreter lock alone), or on this
    loop (`loop`)."""
    if getattr(settings, "SYSLOG_PROCESS", "child") == "child":
        from incidents.syslog.supervisor import SyslogChildProcess

        service = SyslogChildProcess(config)
        start = service.start
    else:
        from incidents.syslog.service import SyslogService
        from incidents.syslog.sink import get_sink

        service = SyslogService(config, get_sink())
        start = partial(_call_in_loop, loop, service.start)
    if runner is not None:
        interval = getattr(settings, "MONITORS", {}).get("CHECK_INTERVAL", 15.0)
        runner.add_check("syslog_receiver", service.health, interval=interval)
    start()
    return service


def _call_in_loop(loop, callback):
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        callback()
    else:
        loop.call_soon_threadsafe(callback)


async def stop_in_process():
    """Stop what `start_in_process` started (idempotent)."""
    global _services
    with _lock:
        services, _services = _services, None
    if services is None:
        return
    if services.runner is not None:
        try:
            await services.runner.stop()
        except Exception:
            logger.exception("stopping the monitors failed")
        await services.publisher.aclose()
    if services.watch_service is not None:
        await asyncio.to_thread(services.watch_service.stop)
    if services.syslog is not None:
        try:
            await services.syslog.stop()
        except Exception:
            logger.exception("stopping the syslog receiver failed")


class InProcessServicesMiddleware:
    """ASGI middleware: starts the in-process services with the server (lifespan startup,
    or the first request or connection for servers without lifespan) and stops them at
    lifespan shutdown. Wrap the outermost application with it."""

    def __init__(self, app):
        from realtime.servers.channels import frames_saved

        self.app = app
        # Around Channels' ProtocolTypeRouter, its one-line dispatch is done here: one
        # coroutine frame less for every open socket to hold (the `channels_frames` fast
        # path, realtime/servers/channels.py).
        routes = getattr(app, "application_mapping", None) if frames_saved() else None
        self.routes = routes or {}
        self.started_on = None  # the event loop it called start_in_process() on

    @markcoroutinefunction
    def __call__(self, scope, receive, send):
        # Returns the routed application's coroutine instead of awaiting it: no frame of
        # this middleware for every open socket to hold. Marked as a coroutine function
        # so that servers take it for an ASGI 3 application.
        if scope["type"] == "lifespan":
            return self._lifespan(receive, send)
        loop = asyncio.get_running_loop()
        if loop is not self.started_on:  # once per loop: its settings, read on every
            start_in_process(loop)  # connect, showed in the connect storm's profile
            self.started_on = loop
        return self.routes.get(scope["type"], self.app)(scope, receive, send)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    start_in_process(asyncio.get_running_loop())
                except Exception as exc:
                    logger.exception("starting the in-process monitors failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await stop_in_process()
                await send({"type": "lifespan.shutdown.complete"})
                return
