"""Reconnect without loss: `?since=`, remembered client ids, the replay window."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from realtime.models import Event
from realtime.publishing import Recipients, publish

pytestmark = pytest.mark.django_db(transaction=True)

apublish = sync_to_async(publish)


async def test_since_replays_missed_events_marked_replayed_then_replay_complete(
    ws, alice, token_for
):
    seen = await apublish("security_event", {"n": 0})
    await apublish("security_event", {"n": 1})
    await apublish("health_update", {"component": "system"})
    client = await ws(f"/ws?since={seen.message_id}", token=token_for(alice))
    assert (await client.receive())["type"] == "connection_established"
    first, second = await client.receive(), await client.receive()
    assert (first["type"], first["data"], first["replayed"]) == ("security_event", {"n": 1}, True)
    assert (second["event_type"], second["replayed"]) == ("health_update", True)
    done = await client.receive()
    assert done["type"] == "replay_complete"
    assert done["data"]["replayed"] == 2
    assert done["data"]["complete"] is True


async def test_replay_honours_subscriptions_filters_and_permissions(ws, bob, alice, token_for):
    seen = await apublish("health_update", {"n": 0})
    await apublish("security_event", {"n": 1})  # not for viewers
    await apublish("system_status", {"n": 2}, priority=3)  # below the filter
    await apublish("system_status", {"n": 3}, priority=6)
    await apublish("user_login", {"n": 4}, recipients=Recipients.user(alice))  # not bob's
    client = await ws(f"/ws?since={seen.message_id}&min_priority=4", token=token_for(bob))
    await client.receive()
    frames = []
    while True:
        frame = await client.receive()
        if frame["type"] == "replay_complete":
            break
        frames.append(frame)
    assert [f["data"]["n"] for f in frames] == [3]
    assert frame["data"]["replayed"] == 1


async def test_gap_older_than_the_window_says_incomplete(ws, alice, token_for):
    old = await apublish("security_event", {"n": 0})
    missed = await apublish("security_event", {"n": 1})
    await sync_to_async(Event.objects.filter(pk=missed.pk).update)(
        created_at=timezone.now() - timedelta(hours=2)
    )
    await apublish("security_event", {"n": 2})
    client = await ws(f"/ws?since={old.message_id}", token=token_for(alice))
    await client.receive()
    assert (await client.receive())["data"] == {"n": 2}
    done = await client.receive()
    assert done["data"] == {"replayed": 1, "complete": False, "since": old.message_id}


async def test_more_than_the_maximum_sends_the_newest_and_says_incomplete(
    ws, alice, token_for, settings
):
    settings.REALTIME = {**settings.REALTIME, "REPLAY_MAX_EVENTS": 2}
    start = await apublish("security_event", {"n": 0})
    for n in range(1, 5):
        await apublish("security_event", {"n": n})
    client = await ws(f"/ws?since={start.message_id}", token=token_for(alice))
    await client.receive()
    assert [(await client.receive())["data"]["n"] for _ in range(2)] == [3, 4]
    assert (await client.receive())["data"]["complete"] is False


async def test_unknown_position_says_incomplete(ws, alice, token_for):
    await apublish("security_event", {"n": 0})
    client = await ws("/ws?since=999999", token=token_for(alice))
    await client.receive()
    assert (await client.receive())["data"]["complete"] is False


async def test_remembered_client_id_resumes_where_it_left_off(ws, alice, token_for):
    first = await ws("/ws/laptop", token=token_for(alice))
    await first.receive()
    await apublish("security_event", {"n": 1})
    assert (await first.receive())["data"] == {"n": 1}
    await first.disconnect()
    await apublish("security_event", {"n": 2})
    again = await ws("/ws/laptop", token=token_for(alice))
    await again.receive()
    replayed = await again.receive()
    assert (replayed["data"], replayed["replayed"]) == ({"n": 2}, True)
    assert (await again.receive())["data"]["replayed"] == 1


async def test_no_duplicates_across_the_replay_live_seam(ws, alice, token_for, monkeypatch):
    """An event that arrives live while the replay is read is sent once."""
    from realtime import replay
    from realtime.consumers import resume

    start = await apublish("security_event", {"n": 0})
    await apublish("security_event", {"n": 1})
    original = replay.missed_events

    def missed_with_a_live_event_meanwhile(connection, since):
        publish("security_event", {"n": 2})  # live, while the replay is being read
        return original(connection, since)

    monkeypatch.setattr(resume, "missed_events", missed_with_a_live_event_meanwhile)
    client = await ws(f"/ws?since={start.message_id}", token=token_for(alice))
    await client.receive()
    frames = []
    while len(frames) < 3:
        frames.append(await client.receive())
    assert [f.get("data", {}).get("n") for f in frames if f["type"] == "security_event"] == [1, 2]
    assert frames[-1]["type"] in ("replay_complete", "security_event")
    assert await client.receive_nothing()


async def test_bad_since_is_an_error_and_the_connection_goes_on(ws, alice, token_for):
    client = await ws("/ws?since=yesterday", token=token_for(alice))
    await client.receive()
    assert (await client.receive())["error_code"] == "INVALID_MESSAGE"
    await client.send({"type": "ping"})
    assert (await client.receive())["type"] == "pong"


async def test_remembered_client_gets_its_subscriptions_and_filter_back(ws, alice, token_for):
    first = await ws("/ws/tablet", token=token_for(alice))
    await first.receive()
    await first.send(
        {"type": "subscribe", "data": {"event_types": ["security_event"], "replace_existing": True}}
    )
    await first.receive()
    await first.send({"type": "set_filter", "data": {"min_priority": 7}})
    await first.receive()
    await first.disconnect()
    await apublish("security_event", {"n": "low"}, priority=2)
    await apublish("security_event", {"n": "high"}, priority=9)
    await apublish("health_update", {"n": "unsubscribed"})
    again = await ws("/ws/tablet", token=token_for(alice))
    greeting = await again.receive()
    assert greeting["data"]["subscriptions"] == ["security_event"]
    assert (await again.receive())["data"] == {"n": "high"}
    assert (await again.receive())["data"]["replayed"] == 1


async def test_filter_in_the_query_string_applies_to_the_replay(ws, alice, token_for):
    start = await apublish("security_event", {"n": 0})
    await apublish("security_event", {"n": 1, "category": "web"}, priority=8)
    await apublish("security_event", {"n": 2, "category": "authentication"}, priority=8)
    await apublish("security_event", {"n": 3, "category": "web"}, priority=2)
    client = await ws(
        f"/ws?since={start.message_id}&categories=web&min_priority=5", token=token_for(alice)
    )
    await client.receive()
    assert (await client.receive())["data"]["n"] == 1
    assert (await client.receive())["data"]["replayed"] == 1
