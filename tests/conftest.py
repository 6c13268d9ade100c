"""Shared fixtures: the personas alice (analyst), bob (viewer) and carol (admin), and
sockets over the real ASGI application."""

import contextlib
import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import override_settings

from tests.personas import PASSWORD


@pytest.fixture(scope="session")
def redis_client():
    """A client of the test run's Redis (None without REDIS_URL), for clearing its keys."""
    from django.conf import settings

    if not settings.REDIS_URL:
        yield None
        return
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture(scope="session", autouse=True)
def _redis_keys_of_this_run(worker_id, redis_client):
    """Test runs and their parallel workers share one Redis: each gets a key prefix of its
    own, so their channel layers, caches, connection counts and remembered clients never
    meet (test databases are recreated, so user ids repeat from run to run). The keys are
    deleted at the end."""
    import uuid

    from django.conf import settings

    if not settings.REDIS_URL:
        yield
        return
    prefix = f"{settings.REDIS_KEY_PREFIX}-{worker_id}-{uuid.uuid4().hex[:8]}"
    layers = {**settings.CHANNEL_LAYERS}
    layers["default"] = {**layers["default"]}
    layers["default"]["CONFIG"] = {**layers["default"]["CONFIG"], "prefix": prefix}
    caches = {**settings.CACHES}
    caches["default"] = {**caches["default"], "KEY_PREFIX": f"{prefix}.cache"}
    with override_settings(REDIS_KEY_PREFIX=prefix, CHANNEL_LAYERS=layers, CACHES=caches):
        yield
    for key in redis_client.scan_iter(match=f"{prefix}*", count=1000):
        redis_client.delete(key)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings):
    """The test databases start without the shipped Sigma rules (`migrate` stores them
    by default): the built-in rules run, as the tests of the pipeline expect. The tests
    of the shipped rules store them themselves (tests/sigma/test_shipped.py). Here, and
    not in an autouse fixture, so that it holds while pytest-django creates the test
    databases."""
    with override_settings(SIGMA_SHIPPED_RULES=False):
        yield


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Through the `settings` fixture, as every per-test change: overrides of one test must be
    # undone in the order they were made, or each test leaves a layer of settings behind
    # (and a long run ends in a RecursionError reading any setting).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_principals():
    """User ids repeat from test to test: no test sees another's user snapshots (or
    verified tokens)."""
    from realtime import access, auth

    access.forget_all()
    auth.forget_verified_tokens()


@pytest.fixture(autouse=True)
def _no_in_process_services(settings):
    """The monitors, log watchers, syslog receiver and the resuming of interrupted raw
    logs stay out of test servers unless a test starts them."""
    settings.MONITORS_IN_PROCESS = False
    settings.WATCH_LOGS = []
    settings.SYSLOG_IN_PROCESS = False
    settings.SYSLOG_PROCESS = "loop"  # a test that starts it in-process shares its database
    settings.RESUME_RAW_LOGS = False


@pytest.fixture(autouse=True)
def _no_signal_handlers(settings):
    """Hubs started inside the test process leave pytest's SIGTERM alone."""
    settings.REALTIME = {**settings.REALTIME, "HANDLE_SIGTERM": False}


@pytest.fixture(autouse=True)
def _clear_cache(settings, redis_client):
    """Each test starts with empty rate limits, counters and detection state. On Redis,
    only this run's cache keys go (flushdb would also wipe the channel layer and other
    runs' keys), through a client of its own (the cache's is not public)."""
    from django.core.cache import cache

    if redis_client is not None:
        for pattern in (
            f"{settings.REDIS_KEY_PREFIX}.cache:*",
            f"{settings.REDIS_KEY_PREFIX}.rt:*",
        ):
            for key in redis_client.scan_iter(match=pattern):
                redis_client.delete(key)
    else:
        cache.clear()
    from incidents.processing import reset_detection_state

    reset_detection_state()
    yield


@pytest.fixture
def make_user(db):
    """make_user("dave", role="analyst", **fields) -> a user in that role's group."""

    def make(username, *, role=None, password=PASSWORD, **fields):
        user = get_user_model().objects.create_user(
            username=username, password=password, email=f"{username}@example.com", **fields
        )
        if role:
            user.groups.add(Group.objects.get(name=role))
            if role == "admin":
                user.is_staff = True
                user.save(update_fields=["is_staff"])
        return user

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice", role="analyst")


@pytest.fixture
def bob(make_user):
    return make_user("bob", role="viewer")


@pytest.fixture
def carol(make_user):
    return make_user("carol", role="admin")


@pytest.fixture
def token_for():
    """token_for(user) -> a JWT access token string."""
    from rest_framework_simplejwt.tokens import AccessToken

    return lambda user: str(AccessToken.for_user(user))


@pytest.fixture
def clock():
    """The clock token expiry is measured against (`realtime.clock`), moved on by hand:
    `clock.advance(seconds)`. Only expiry reads it; nothing sleeps until a token runs out."""
    from realtime import clock as realtime_clock
    from tests.clock import FakeClock

    fake = FakeClock()
    realtime_clock.use(fake)
    yield fake
    realtime_clock.use(time.time)


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
async def fresh_hub():
    """A test with sockets gets its own hub and, in the embedded store, zero counts."""
    from asgiref.sync import sync_to_async
    from channels.layers import channel_layers
    from django.db import connections

    from realtime import hub as hub_module
    from realtime import store

    # A channel layer belongs to the event loop that first used it (channels-redis keeps
    # locks and connections per loop), and every test runs in a loop of its own.
    channel_layers.backends.clear()
    store.reset_local_store()
    yield
    for hub in list(hub_module._hubs.values()):
        with contextlib.suppress(Exception):
            await hub.stop()
    hub_module._hubs.clear()
    # The worker thread that ran the consumers' database calls keeps its connection open;
    # close it so the test database can be dropped at the end.
    await sync_to_async(connections.close_all)()
    channel_layers.backends.clear()


@pytest.fixture
async def ws(fresh_hub):
    """ws(path, token=None, headers=()) -> a connected JSON client over the real ASGI app;
    every client is disconnected after the test."""
    from channels.testing import WebsocketCommunicator

    from tests.sockets import Client
    from threatlens.asgi import application

    clients = []

    async def open_socket(path="/ws", *, token=None, headers=(), connect=True):
        if token:
            path += ("&" if "?" in path else "?") + f"token={token}"
        client = Client(WebsocketCommunicator(application, path, headers=list(headers)))
        clients.append(client)
        if connect:
            await client.connect()
        return client

    yield open_socket
    for client in clients:
        await client.disconnect()


def pytest_sessionfinish(session, exitstatus):
    """SQLite leaves its -wal and -shm files next to the test database it dropped."""
    from pathlib import Path

    from django.conf import settings

    if not settings.configured or "sqlite" not in settings.DATABASES["default"]["ENGINE"]:
        return
    name = str(settings.DATABASES["default"].get("TEST", {}).get("NAME") or "")
    for leftover in Path(name).parent.glob(Path(name).name + "*-[ws][ah][lm]"):
        leftover.unlink(missing_ok=True)


@pytest.fixture(scope="session", autouse=True)
def _connections_of_other_threads_closed(django_db_setup, django_db_blocker):
    """Dropping a test database fails while a connection to it is open. Some outlive the
    tests: the connection of asgiref's thread for `sync_to_async` (the tests' own calls
    do not close it), those of the ASGI handler's kept request threads, those of ended
    threads, which only the garbage collector closes (PostgreSQL's pool counts them as in
    use until then), and any that something still references without closing it (the
    psycopg connection a kept exception's traceback holds: Django keeps a transaction's
    last database error on the connection wrapper). The first three are closed; on
    PostgreSQL, the server then ends whatever other session the test database still has."""
    yield
    import asyncio
    import gc

    from asgiref.sync import sync_to_async
    from django.db import connections

    from threatlens.asgi import django_asgi_app

    # Outside any async_to_sync, a thread-sensitive sync_to_async call runs in asgiref's
    # one shared thread: the thread whose connection the tests' own calls left open.
    asyncio.run(sync_to_async(connections.close_all)())
    django_asgi_app.request_threads.close(wait=True)
    gc.collect()
    # Still open now: the pool's idle connections (closed with the pool anyway) and any
    # that something references without ever closing. The server ends them all, by the
    # public SQL function, as nothing in Python can reach the second kind.
    for connection in connections.all(initialized_only=True):
        if connection.vendor == "postgresql":
            with django_db_blocker.unblock(), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
