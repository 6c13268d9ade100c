"""HTTP request threads outlive their requests (threatlens/handlers.py), through the real
ASGI application."""

import asyncio
import json
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator
from django.contrib.auth import get_user_model
from django.db import connection
from django.http import JsonResponse
from django.urls import path

from threatlens.asgi import application
from threatlens.handlers import RequestThread, RequestThreads

pytestmark = pytest.mark.django_db(transaction=True)

HOST = [(b"host", b"localhost")]


async def view(request):
    return JsonResponse({"async": True, "user": str(request.user)})


def where(request):
    """Which thread and database connection served the request."""
    get_user_model().objects.exists()
    return JsonResponse({"thread": threading.get_ident(), "connection": id(connection.connection)})


barrier = threading.Barrier(2, timeout=5)


def meet(request):
    """Answers only once a second request is in another thread at the same time."""
    barrier.wait()
    return JsonResponse({"thread": threading.get_ident()})


def plain(request):
    return JsonResponse({"ok": True})


urlpatterns = [
    path("async-view", view),
    path("where", where),
    path("meet", meet),
    path("plain", plain),
]


async def get_json(url):
    response = await HttpCommunicator(application, "GET", url, headers=HOST).get_response()
    assert response["status"] == 200, response
    return json.loads(response["body"])


async def test_the_next_request_reuses_the_thread_and_its_database_connection(settings):
    settings.ROOT_URLCONF = __name__
    first = await get_json("/where")
    second = await get_json("/where")
    assert second["thread"] == first["thread"]
    if connection.vendor == "sqlite":  # PostgreSQL hands connections back to its pool
        assert second["connection"] == first["connection"]


async def test_concurrent_requests_run_in_threads_of_their_own(settings):
    settings.ROOT_URLCONF = __name__
    barrier.reset()
    first, second = await asyncio.gather(get_json("/meet"), get_json("/meet"))
    assert first["thread"] != second["thread"]


async def test_threads_beyond_those_kept_end():
    threads = RequestThreads(kept=1)
    entered, release = asyncio.Event(), asyncio.Event()
    seen = []

    async def request():
        async with threads.thread():
            seen.append(await sync_to_async(threading.get_ident)())
            if len(seen) == 2:
                entered.set()
            await release.wait()

    tasks = [asyncio.create_task(request()) for _ in range(2)]
    await entered.wait()
    assert len(set(seen)) == 2
    release.set()
    await asyncio.gather(*tasks)
    assert len(threads._idle) == 1
    async with threads.thread():  # the kept thread serves the next request
        assert await sync_to_async(threading.get_ident)() in seen
    threads.close()
    assert not threads._idle


async def test_an_async_view_still_answers(settings):
    settings.ROOT_URLCONF = __name__
    communicator = HttpCommunicator(application, "GET", "/async-view", headers=HOST)
    response = await communicator.get_response()
    assert response["status"] == 200
    assert b'"async": true' in response["body"]


async def test_a_thread_still_running_an_abandoned_request_is_not_handed_on():
    threads = RequestThreads(kept=1)
    release = threading.Event()
    started = threading.Event()

    def slow_view():
        started.set()
        release.wait(5)
        return threading.get_ident()

    async def request():
        async with threads.thread():
            await sync_to_async(slow_view)()

    task = asyncio.create_task(request())
    await asyncio.to_thread(started.wait, 5)
    task.cancel()  # as Django does when the client disconnects
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not threads._idle  # the busy thread was retired, not kept
    async with threads.thread():
        assert await asyncio.wait_for(sync_to_async(threading.get_ident)(), 2)
    release.set()
    threads.close(wait=True)


async def test_the_middleware_and_the_view_cross_to_the_request_thread_once(settings, monkeypatch):
    """Django's async chain would cross for each middleware method (15 times here): now
    request_started's receivers (when connected), the middleware with the view, and the
    response's close."""
    settings.ROOT_URLCONF = __name__
    crossings = []
    submit = RequestThread.submit

    def counted(self, fn, /, *args, **kwargs):
        crossings.append(fn)
        return submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(RequestThread, "submit", counted)
    await get_json("/plain")  # a first request may set up lazily
    crossings.clear()
    assert await get_json("/plain") == {"ok": True}
    assert len(crossings) <= 3


async def test_middleware_still_answers_before_the_view(settings):
    """The synchronous chain keeps the middleware's own answers: CommonMiddleware's
    redirect to the URL with a slash."""
    settings.ROOT_URLCONF = "threatlens.urls"
    communicator = HttpCommunicator(application, "GET", "/api/realtime/publish", headers=HOST)
    response = await communicator.get_response()
    assert response["status"] == 301
    assert dict(response["headers"])[b"Location"] == b"/api/realtime/publish/"
