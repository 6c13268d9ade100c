"""Events published during an HTTP request reach the hubs when the request's synchronous
part is done, before its response (realtime.transport.sends_held_until_done)."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async

from realtime import transport


@pytest.fixture
def dispatched(monkeypatch):
    sent = []
    monkeypatch.setattr(transport, "_dispatch_locally", sent.append)
    monkeypatch.setattr(transport, "shared_layer", lambda: None)
    return sent


async def test_sends_wait_for_the_end_of_the_synchronous_part(dispatched):
    seen_inside = []

    def request_work():
        transport.send_to_hubs("events", {"id": 1})
        transport.send_to_hubs("events", {"id": 2})
        seen_inside.extend(dispatched)

    async with transport.sends_held_until_done():
        await sync_to_async(request_work, thread_sensitive=True)()
    assert seen_inside == []
    assert dispatched == [{"id": 1}, {"id": 2}]


async def test_they_go_even_when_the_request_fails(dispatched):
    def failing_work():
        transport.send_to_hubs("events", {"id": 3})
        raise RuntimeError("the view broke after committing")

    with pytest.raises(RuntimeError):
        async with transport.sends_held_until_done():
            await sync_to_async(failing_work, thread_sensitive=True)()
    assert dispatched == [{"id": 3}]


def test_outside_a_request_they_go_at_once(dispatched):
    transport.send_to_hubs("events", {"id": 4})
    assert dispatched == [{"id": 4}]


class RecordingLayer:
    """A shared layer that records each send and the thread it ran in; `failing` sends
    raise, as a layer whose server is away."""

    def __init__(self, failing=()):
        self.sent = []
        self.failing = set(failing)

    async def group_send(self, group, message):
        if message["id"] in self.failing:
            raise ConnectionError("layer away")
        self.sent.append((group, message["id"], threading.current_thread().name))


@pytest.fixture
def layer(monkeypatch):
    layer = RecordingLayer()
    monkeypatch.setattr(transport, "shared_layer", lambda: layer)
    return layer


async def test_with_a_shared_layer_they_go_in_order_from_the_event_loop(layer):
    def request_work():
        for n in (1, 2, 3):
            transport.send_to_hubs(f"group{n}", {"id": n})
        assert layer.sent == []

    async with transport.sends_held_until_done():
        await sync_to_async(request_work, thread_sensitive=True)()
    loop_thread = threading.current_thread().name
    assert layer.sent == [(f"group{n}", n, loop_thread) for n in (1, 2, 3)]


async def test_a_request_given_up_on_still_sends_what_it_stored(layer):
    started, release, done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def group_send(group, message):
        started.set()
        await release.wait()
        layer.sent.append((group, message["id"]))
        done.set()

    layer.group_send = group_send

    async def request():
        async with transport.sends_held_until_done():
            await sync_to_async(transport.send_to_hubs, thread_sensitive=True)("g", {"id": 7})

    task = asyncio.create_task(request())
    await started.wait()
    task.cancel()  # as Django does when the client goes away, the send under way
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    await done.wait()
    assert layer.sent == [("g", 7)]


async def test_a_send_the_layer_refuses_reaches_this_process_and_the_rest_go(
    layer, monkeypatch, caplog
):
    layer.failing = {2}
    local = []
    monkeypatch.setattr(transport, "_dispatch_locally", local.append)

    def request_work():
        for n in (1, 2, 3):
            transport.send_to_hubs("events", {"id": n})

    async with transport.sends_held_until_done():
        await sync_to_async(request_work, thread_sensitive=True)()
    assert [n for _group, n, _thread in layer.sent] == [1, 3]
    assert local == [{"id": 2}]
    assert "channel layer unavailable" in caplog.text
