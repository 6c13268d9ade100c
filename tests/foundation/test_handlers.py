"""HTTP requests run Django's middleware and view in one hop to a thread
(threatlens/handlers.py), through the real ASGI application."""

import pytest
from asgiref.sync import SyncToAsync
from channels.testing import HttpCommunicator
from django.http import JsonResponse
from django.urls import path

from threatlens.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

HOST = [(b"host", b"localhost")]


@pytest.fixture
def hops(monkeypatch):
    """The names of the sync functions the request's `sync_to_async` calls ran."""
    names = []
    original = SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        names.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    return names


async def test_the_middleware_and_view_run_in_one_hop(hops):
    response = await HttpCommunicator(application, "GET", "/healthz", headers=HOST).get_response()
    assert response["status"] == 200
    assert hops.count("BaseHandler._get_response") == 0  # it runs inside the chain's hop
    chain = [name for name in hops if "convert_exception_to_response" in name]
    assert len(chain) == 1
    assert not [name for name in hops if "process_request" in name or "process_response" in name]


async def view(request):
    return JsonResponse({"async": True, "user": str(request.user)})


urlpatterns = [path("async-view", view)]


async def test_an_async_view_still_answers(settings):
    settings.ROOT_URLCONF = __name__
    communicator = HttpCommunicator(application, "GET", "/async-view", headers=HOST)
    response = await communicator.get_response()
    assert response["status"] == 200
    assert b'"async": true' in response["body"]
