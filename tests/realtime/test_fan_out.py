"""The hub's fan-out pass: events that arrive together reach each connection in one go.

Driven directly with fake sockets and hub messages, as the channel layer or the event
table hands them to the hub."""

import asyncio
import dataclasses

import pytest

from realtime import catalogue, fanout, hub
from realtime.filters import EventFilter
from tests.realtime.fakes import PRINCIPAL, FakeSocket, connection, event, message

DAVE = dataclasses.replace(PRINCIPAL, user_id=2, username="dave", is_superuser=False)


@pytest.fixture
async def the_hub():
    the_hub = hub.Hub()
    yield the_hub
    for conn in list(the_hub.connections.values()):
        the_hub.detach(conn)
    await the_hub.db.close()


def attached(the_hub, *, subscriptions=("health_update",), name="c1", **options):
    socket = FakeSocket()
    conn = connection(socket, name=name, **options)
    conn.allowed = catalogue.names()
    conn.subscriptions = frozenset()
    the_hub.attach(conn)
    the_hub.set_subscriptions(conn, subscriptions)
    return socket, conn


async def next_pass():
    await asyncio.sleep(0)


def numbers(socket):
    return [e["data"]["n"] for e in socket.events()]


async def test_events_that_arrive_together_reach_each_connection_as_one_frame_built_once(
    the_hub,
):
    sockets = [attached(the_hub, name=f"c{i}")[0] for i in range(3)]
    for n in range(5):
        the_hub.dispatch(message(n=n))
    assert all(socket.frames == [] for socket in sockets)  # the pass runs once they are in
    await next_pass()
    for socket in sockets:
        assert [frame["type"] for frame in socket.frames] == ["batch"]
        assert numbers(socket) == [0, 1, 2, 3, 4]
    assert sockets[0].texts[0] is sockets[1].texts[0] is sockets[2].texts[0]
    assert the_hub.counters["events_delivered"] == 15


async def test_a_pass_sends_the_highest_priority_first_and_keeps_arrival_order_within_one(
    the_hub,
):
    socket, _ = attached(the_hub)
    for n, priority in [(1, 3), (2, 8), (3, 5), (4, 8), (5, 3)]:
        the_hub.dispatch(message(priority=priority, n=n))
    await next_pass()
    assert numbers(socket) == [2, 4, 3, 1, 5]


async def test_a_pass_gives_each_connection_its_subscriptions_and_what_its_filter_passes(
    the_hub,
):
    health, _ = attached(the_hub, name="health")
    both, _ = attached(the_hub, subscriptions=("health_update", "config_change"), name="both")
    urgent, urgent_conn = attached(
        the_hub, subscriptions=("health_update", "config_change"), name="urgent"
    )
    urgent_conn.filter = EventFilter.parse({"min_priority": 7})
    the_hub.dispatch(message(n="health"))
    the_hub.dispatch(message("config_change", n="config"))
    the_hub.dispatch(message("config_change", priority=8, n="urgent config"))
    await next_pass()
    assert numbers(health) == ["health"]
    assert numbers(both) == ["urgent config", "health", "config"]
    assert numbers(urgent) == ["urgent config"]
    assert urgent_conn.filtered == 2


async def test_an_event_for_one_user_reaches_only_that_user_within_a_pass(the_hub):
    others, _ = attached(
        the_hub, subscriptions=("health_update", "user_login"), name="dave", principal=DAVE
    )
    admin, _ = attached(the_hub, subscriptions=("health_update", "user_login"), name="alice")
    the_hub.dispatch(message(n="everyone"))
    the_hub.dispatch(message("user_login", users=[PRINCIPAL.user_id], n="alice only"))
    await next_pass()
    assert numbers(others) == ["everyone"]
    assert sorted(numbers(admin)) == ["alice only", "everyone"]


async def test_an_event_brought_twice_in_one_pass_is_delivered_once(the_hub):
    socket, _ = attached(the_hub)
    first = message(n="once")
    the_hub.dispatch(first)
    the_hub.dispatch(dict(first))  # the same event from the table, before the pass ran
    the_hub.dispatch(message(n="next"))
    await next_pass()
    assert numbers(socket) == ["once", "next"]


async def test_a_backlog_longer_than_a_pass_goes_in_several_with_the_loop_free_between(
    the_hub, monkeypatch
):
    monkeypatch.setattr(fanout, "PASS_EVENTS", 3)
    socket, _ = attached(the_hub, batch_window=0)
    for n in range(7):
        the_hub.dispatch(message(n=n))
    await next_pass()
    assert numbers(socket) == [0, 1, 2]
    await next_pass()
    await next_pass()
    assert numbers(socket) == list(range(7))


async def test_a_pass_sends_an_idle_connection_a_frames_worth_at_once_and_queues_the_rest():
    socket = FakeSocket()
    conn = connection(socket, batch_window=10)
    conn.push_many([event(n=n) for n in range(150)])
    assert [len(frame["events"]) for frame in socket.frames] == [100]
    assert conn.queue_depth == 50
    conn.stop()


async def test_a_pass_skips_what_a_replay_already_sent():
    socket = FakeSocket()
    conn = connection(socket, batch_window=0)
    replayed, live = event(n="replayed"), event(n="live")
    conn.pause()
    conn.resume({replayed.id})
    conn.push_many([replayed, live])
    assert numbers(socket) == ["live"]
    conn.stop()
