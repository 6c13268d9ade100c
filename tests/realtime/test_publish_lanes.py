"""The publish fast path's lanes (realtime/publish_lanes.py): a connection kept while
groups follow each other, given back when idle or broken; several groups stored at once
on PostgreSQL; one event stored in one statement."""

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection

from realtime import fast_publish, publish_lanes, publishing
from realtime.publish_lanes import Lane
from tests.realtime.test_fast_publish import carol_token, post, server, stored  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def give_backs(monkeypatch):
    """The lanes' give-backs of their connection, recorded (and done)."""
    calls = []
    real = publish_lanes.connections.close_all

    def recording():
        if threading.current_thread().name.startswith("test-lane"):
            calls.append(time.monotonic())
        real()

    monkeypatch.setattr(publish_lanes.connections, "close_all", recording)
    return calls


def connected(_items):
    connection.ensure_connection()
    return id(connection.connection)


async def test_a_lane_keeps_its_connection_while_groups_follow_and_gives_it_back_idle(
    give_backs, monkeypatch
):
    monkeypatch.setattr(publish_lanes, "IDLE", 0.3)
    lane = Lane(connected, "test-lane")
    first = await lane.run([])
    assert await lane.run([]) == first and give_backs == []  # no checkout per group
    await wait_for(lambda: give_backs)
    assert len(give_backs) == 1
    await asyncio.sleep(0.5)
    assert len(give_backs) == 1  # given back once, not again while nothing comes


async def wait_for(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def test_a_lane_gives_back_a_connection_that_saw_an_error_at_once(give_backs, monkeypatch):
    monkeypatch.setattr(publish_lanes, "IDLE", 60)  # not the idle give-back

    def broken(_items):
        connection.ensure_connection()
        connection.errors_occurred = True  # as Django marks a lost connection
        raise DatabaseError("server closed the connection unexpectedly")

    lane = Lane(broken, "test-lane")
    with pytest.raises(DatabaseError):
        await lane.run([])
    await wait_for(lambda: give_backs)  # just after the answer: it does not wait for this
    assert len(give_backs) == 1


async def test_a_lane_gives_back_a_connection_kept_too_long_however_often_groups_come(
    give_backs, monkeypatch
):
    monkeypatch.setattr(publish_lanes, "IDLE", 60)  # not the idle give-back
    monkeypatch.setattr(publish_lanes, "HOLD_AT_MOST", 0.2)
    lane = Lane(connected, "test-lane")
    first = await lane.run([])
    await asyncio.sleep(0.3)
    assert await lane.run([]) == first  # the group past the limit still uses it
    await wait_for(lambda: give_backs)  # then it goes back
    assert len(give_backs) == 1
    await lane.run([])
    assert len(give_backs) == 1  # a fresh one, kept again


async def test_a_lane_runs_its_work_in_the_callers_context():
    import contextvars

    marker = contextvars.ContextVar("marker", default=None)
    marker.set("the caller's")
    lane = Lane(lambda _items: marker.get(), "test-lane")
    assert await lane.run([]) == "the caller's"


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_groups_are_stored_at_once_in_as_many_lanes_as_set(
    server,  # noqa: F811
    carol_token,  # noqa: F811
    settings,
    monkeypatch,
    in_flight,
):
    settings.PUBLISH_COMMITS_IN_FLIGHT = in_flight
    await post(server, {"event_type": "security_event", "data": {}}, carol_token)  # snapshot
    inside, most, lock = [0], [0], threading.Lock()
    both_in = threading.Event()
    real = fast_publish.publish_each

    def publish_each(items):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            if inside[0] == 2:
                both_in.set()
        both_in.wait(1)  # a second lane joins within the second, or there is none
        try:
            return real(items)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(fast_publish, "publish_each", publish_each)
    answers = await asyncio.gather(
        *(post(server, {"event_type": "security_event", "data": {}}, carol_token) for _ in range(2))
    )
    assert [answer["status"] for answer in answers] == [201, 201]
    assert len(server.reached_django) == 1
    assert most[0] == in_flight
    assert await sync_to_async(stored)() == 3


def test_a_group_is_stored_in_one_statement_outside_any_transaction():
    """One INSERT, committed as it runs (one round trip), for one event or several."""
    inserts = []

    def record(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("INSERT"):
            inserts.append(connection.in_atomic_block)
        return execute(sql, params, many, context)

    item = ("security_event", {}, {})
    with connection.execute_wrapper(record):
        publishing.publish_each([item])
        publishing.publish_each([item, item, item])
    assert inserts == [False, False]


def test_each_event_of_a_group_gets_its_own_row():
    from realtime.models import Event
    from realtime.publishing import Recipients

    items = [
        ("security_event", {"n": 1, "category": "auth"}, {"priority": 9}),
        ("incident_updated", {"n": 2}, {"recipients": Recipients(users=frozenset({7}))}),
        ("security_event", {"n": 3, "source": "fw"}, {}),
    ]
    events = publishing.publish_each(items)
    assert len({event.pk for event in events}) == 3
    for event, (event_type, data, _options) in zip(events, items, strict=True):
        row = Event.objects.get(pk=event.pk)
        assert (row.event_type, row.data) == (event_type, data)
        assert row.created_at == event.created_at
    rows = {row.data["n"]: row for row in Event.objects.filter(pk__in=[e.pk for e in events])}
    assert (rows[1].priority, rows[1].category) == (9, "auth")
    assert (rows[2].recipient_users, rows[3].recipient_users) == ([7], None)
    assert rows[3].source == "fw"
