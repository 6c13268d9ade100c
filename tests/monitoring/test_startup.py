"""Monitors and log watchers inside the server process."""

import asyncio

import pytest

from realtime.models import Event
from threatlens.monitoring import startup

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _stopped():
    yield
    await startup.stop_in_process()


@pytest.fixture
def fast_monitors(settings):
    settings.MONITORS_IN_PROCESS = True
    settings.MONITORS = {"TICK": 0.05, "METRICS_INTERVAL": 0.1, "CHECK_INTERVAL": 0.1}
    settings.WATCH_LOGS = []


async def published(event_type, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await asyncio.to_thread(Event.objects.filter(event_type=event_type).exists):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_nothing_starts_when_neither_monitors_nor_watchers_are_configured(settings):
    settings.MONITORS_IN_PROCESS = False
    settings.WATCH_LOGS = []
    assert startup.start_in_process() is None


async def test_the_monitors_start_once_per_process_and_publish(fast_monitors):
    services = startup.start_in_process()
    assert startup.start_in_process() is services
    assert services.runner is not None and services.watch_service is None
    assert await published("system_metrics")
    await startup.stop_in_process()
    assert startup.running_services() is None


async def test_in_process_default_follows_redis(settings):
    del settings.MONITORS_IN_PROCESS
    settings.REDIS_URL = None
    assert startup.monitors_in_process()
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    assert not startup.monitors_in_process()


async def test_watch_logs_starts_the_watchers_and_their_health_check(
    fast_monitors, settings, tmp_path
):
    log = tmp_path / "auth.log"
    log.write_text("")
    settings.WATCH_LOGS = f"auth={log}"
    services = startup.start_in_process()

    assert services.watch_service is not None
    assert [job.name for job in services.runner.jobs][-1] == "file_monitor"
    assert services.watch_service.watcher.targets[0].source == "auth"
    assert await published("health_update")


async def test_the_middleware_starts_and_stops_them_with_the_lifespan(fast_monitors):
    messages = asyncio.Queue()
    sent = []
    for kind in ("lifespan.startup", "lifespan.shutdown"):
        messages.put_nowait({"type": kind})

    async def send(message):
        sent.append(message["type"])
        if message["type"] == "lifespan.startup.complete":
            assert startup.running_services() is not None

    app = startup.InProcessServicesMiddleware(None)
    await app({"type": "lifespan"}, messages.get, send)

    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert startup.running_services() is None


async def test_the_middleware_starts_them_on_the_first_request_without_lifespan(fast_monitors):
    calls = []

    async def inner(scope, receive, send):
        calls.append(scope["type"])

    app = startup.InProcessServicesMiddleware(inner)
    await app({"type": "http"}, None, None)
    assert calls == ["http"]
    assert startup.running_services() is not None


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_servers_take_the_middleware_and_the_router_for_asgi_3_applications(server):
    """Both return the next application's coroutine (no frame of theirs per open socket),
    so they are plain methods marked as coroutine functions."""
    from threatlens.asgi import application
    from threatlens.routing import websocket_application

    for app in (application, websocket_application()):
        if server == "uvicorn":
            from uvicorn.config import Config

            config = Config(app)
            config.load()
            assert config.interface == "asgi3"
        else:
            from asgiref.compatibility import is_double_callable

            assert not is_double_callable(app)


async def test_the_monitors_check_the_log_ingest_component(fast_monitors):
    from threatlens.monitoring.events import system_status_data

    services = startup.start_in_process()
    (job,) = [job for job in services.runner.jobs if job.name == "log_ingest"]
    assert job.kind == "check"

    # What the runner publishes as `system_status` for it (the runner's own publishing
    # is tested with the other components).
    data = system_status_data(job.func(), uptime=1.0)
    assert (data["component"], data["status"]) == ("log_ingest", "healthy")
    assert {"files_monitored", "events_processed", "lines_processed", "lag_seconds"} <= set(
        data["metrics"]
    )
