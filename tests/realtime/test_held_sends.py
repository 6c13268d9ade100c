"""Events published during an HTTP request reach the hubs when the request's synchronous
part is done, before its response (realtime.transport.sends_held_until_done)."""

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
