"""Events on the hub socket: envelopes, permissions, audiences, filters, batching."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group

from realtime import access, catalogue
from realtime.catalogue import Audience, Family
from realtime.models import Event
from realtime.publishing import PublishError, Recipients, publish, publish_many

pytestmark = pytest.mark.django_db(transaction=True)

apublish = sync_to_async(publish)


async def connected(ws, user, token_for, path="/ws"):
    client = await ws(path, token=token_for(user))
    assert (await client.receive())["type"] == "connection_established"
    return client


async def test_typed_event_reaches_a_subscriber_in_the_threatlens_envelope(ws, alice, token_for):
    client = await connected(ws, alice, token_for)
    event = await apublish(
        "security_event",
        {"event_id": "e1", "severity": 8, "category": "authentication"},
        priority=8,
    )
    frame = await client.receive()
    assert frame == {
        "type": "security_event",
        "data": {"event_id": "e1", "severity": 8, "category": "authentication"},
        "timestamp": frame["timestamp"],
        "message_id": event.message_id,
        "priority": 8,
    }


async def test_unified_event_uses_the_event_envelope_with_a_priority_label(ws, alice, token_for):
    client = await connected(ws, alice, token_for)
    event = await apublish("health_update", {"component": "database", "status": "healthy"})
    frame = await client.receive()
    assert frame["type"] == "event"
    assert frame["event_type"] == "health_update"
    assert frame["id"] == event.message_id
    assert frame["priority"] == "normal"
    assert frame["data"]["component"] == "database"


async def test_viewer_never_receives_security_events(ws, bob, token_for):
    client = await connected(ws, bob, token_for)
    await apublish("security_event", {"severity": 9})
    await apublish("new_alert", {"id": 1})
    assert await client.receive_nothing()


async def test_unsubscribed_types_are_not_delivered(ws, alice, token_for):
    client = await connected(ws, alice, token_for)
    await apublish("system_status", {"component": "file_monitor"})
    assert await client.receive_nothing()


async def test_user_events_reach_only_their_user_and_admins(ws, alice, bob, carol, token_for):
    alice_ws = await connected(ws, alice, token_for)
    bob_ws = await connected(ws, bob, token_for)
    carol_ws = await connected(ws, carol, token_for)
    await apublish("user_login", {"user_id": alice.pk}, recipients=Recipients.user(alice))
    assert (await alice_ws.receive())["event_type"] == "user_login"
    assert (await carol_ws.receive_event("user_login"))["data"]["user_id"] == alice.pk
    assert await bob_ws.receive_nothing()


async def test_listed_event_reaches_named_users_and_groups_only(
    ws, alice, bob, make_user, token_for
):
    dave = await sync_to_async(make_user)("dave", role="analyst")
    alice_ws = await connected(ws, alice, token_for)
    bob_ws = await connected(ws, bob, token_for)
    dave_ws = await connected(ws, dave, token_for)
    await bob_ws.send({"type": "subscribe", "data": {"event_types": ["zone_created"]}})
    await bob_ws.receive()
    viewers = await sync_to_async(Group.objects.get)(name="viewer")
    await apublish(
        "zone_created",
        {"zone_name": "example.com"},
        recipients=Recipients(users=frozenset({alice.pk}), groups=frozenset({viewers.pk})),
    )
    assert (await alice_ws.receive())["data"]["zone_name"] == "example.com"
    assert (await bob_ws.receive())["data"]["zone_name"] == "example.com"
    assert await dave_ws.receive_nothing()


async def test_filter_hides_low_priority_events_of_every_type(ws, alice, token_for):
    client = await connected(ws, alice, token_for)
    await client.send({"type": "set_filter", "data": {"min_priority": 7}})
    await client.receive()
    await apublish("security_event", {"severity": 3}, priority=3)
    await apublish("health_update", {"component": "system"}, priority=5)
    assert await client.receive_nothing()
    await apublish("security_event", {"severity": 9}, priority=9)
    assert (await client.receive())["priority"] == 9


async def test_category_and_source_filters(ws, alice, token_for):
    client = await connected(ws, alice, token_for)
    await client.send(
        {"type": "set_filter", "data": {"categories": ["authentication"], "sources": ["sshd"]}}
    )
    await client.receive()
    await apublish("security_event", {"category": "web", "source": "sshd"})
    await apublish("security_event", {"category": "authentication", "source": "nginx"})
    assert await client.receive_nothing()
    await apublish("security_event", {"category": "authentication", "source": "sshd"})
    assert (await client.receive())["data"]["source"] == "sshd"


async def test_a_burst_of_unified_events_coalesces_into_a_batch(ws, alice, token_for, settings):
    settings.REALTIME = {**settings.REALTIME, "BATCH_WINDOW": 1.0}
    client = await connected(ws, alice, token_for)
    await apublish("record_created", {"record_id": "0"}, recipients=Recipients.user(alice))
    first = await client.receive()
    assert first["type"] == "event"  # idle: out at once, alone

    def burst():
        return [
            publish("record_created", {"record_id": str(n)}, recipients=Recipients.user(alice))
            for n in range(1, 4)
        ]

    await sync_to_async(burst)()
    batch = await client.receive()
    assert batch["type"] == "batch"
    assert batch["batch_id"]
    assert [e["data"]["record_id"] for e in batch["events"]] == ["1", "2", "3"]
    assert all(e["event_type"] == "record_created" for e in batch["events"])


async def test_burst_goes_out_highest_priority_first_in_order_within_a_priority(
    ws, alice, token_for, settings
):
    settings.REALTIME = {**settings.REALTIME, "BATCH_WINDOW": 0.3}
    client = await connected(ws, alice, token_for)
    await client.send({"type": "ping"})
    await client.receive()  # the pong makes the connection busy: what follows is a burst

    def burst():
        publish("security_event", {"n": 1}, priority=3)
        publish("security_event", {"n": 2}, priority=8)
        publish("security_event", {"n": 3}, priority=3)
        publish("security_event", {"n": 4}, priority=8)

    await sync_to_async(burst)()
    received = [(await client.receive())["data"]["n"] for _ in range(4)]
    assert received == [2, 4, 1, 3]


async def test_critical_event_is_not_held_back_by_the_batch_window(ws, alice, token_for, settings):
    settings.REALTIME = {**settings.REALTIME, "BATCH_WINDOW": 5}
    client = await connected(ws, alice, token_for)
    await client.send({"type": "ping"})
    await client.receive()
    await apublish("security_alert", {"alert_id": "1", "severity": "critical"})
    frame = await client.receive(timeout=1)
    assert frame["event_type"] == "security_alert"
    assert frame["priority"] == "critical"


async def test_event_published_by_another_process_reaches_clients(ws, alice, token_for):
    """Another process (a manage.py command) stores the event; the hub finds it in the table."""
    client = await connected(ws, alice, token_for)
    await sync_to_async(Event.objects.create)(
        event_type="security_event",
        priority=6,
        data={"from": "command"},
        origin="elsewhere:1:abc",
    )
    frame = await client.receive(timeout=3)
    assert frame["data"] == {"from": "command"}


@pytest.fixture
def sensitive_event_type():
    entry = catalogue.declare(
        "test_sensitive",
        family=Family.SECURITY,
        priority=5,
        permission=None,
        sensitive_fields=("password_hint",),
        sensitive_permission="realtime.view_connections",
    )
    yield entry
    catalogue.undeclare("test_sensitive")


async def test_sensitive_fields_are_removed_for_users_without_the_permission(
    ws, alice, carol, token_for, sensitive_event_type
):
    alice_ws = await connected(ws, alice, token_for)
    carol_ws = await connected(ws, carol, token_for)
    for client in (alice_ws, carol_ws):
        await client.send({"type": "subscribe", "data": {"event_types": ["test_sensitive"]}})
        await client.receive()
    await apublish("test_sensitive", {"user": "x", "password_hint": "blue"})
    assert (await alice_ws.receive())["data"] == {"user": "x"}
    frame = await carol_ws.receive_event("test_sensitive")
    assert frame["data"] == {"user": "x", "password_hint": "blue"}


async def test_publish_checks_the_catalogue():
    from realtime.publishing import PublishError

    with pytest.raises(PublishError, match="unknown event type"):
        await apublish("nope", {})
    with pytest.raises(PublishError, match="priority"):
        await apublish("security_event", {}, priority=11)
    with pytest.raises(PublishError, match="needs recipients"):
        await apublish("zone_created", {})
    with pytest.raises(PublishError, match="takes no recipients"):
        await apublish("security_event", {}, recipients=Recipients.user(1))
    assert await sync_to_async(Event.objects.count)() == 0


async def test_every_family_is_declared():
    families = {entry.family for entry in catalogue.all_types()}
    assert families == set(Family)
    assert catalogue.get("incident_created").audience is Audience.LISTED
    assert catalogue.get("user_login").audience is Audience.USER


async def test_no_layer_call_per_client(ws, alice, token_for, monkeypatch):
    """One publish: one event row, one hand-off to the hubs, whatever the number of clients."""
    from realtime import transport

    calls = []
    original = transport.send_to_hubs
    monkeypatch.setattr(
        "realtime.publishing.send_to_hubs",
        lambda group, message: calls.append(group) or original(group, message),
    )
    clients = [await connected(ws, alice, token_for) for _ in range(5)]
    await apublish("security_event", {"n": 1})
    for client in clients:
        assert (await client.receive())["data"] == {"n": 1}
    assert calls.count("rt.event.security_event") == 1


async def test_the_table_read_keeps_up_however_many_events_came_through_the_layer(
    ws, alice, token_for, monkeypatch
):
    """The event table is read from just below the last event delivered, whichever source
    brought it, so an event only the table has is found after any number of others."""
    from realtime import sources

    monkeypatch.setattr(sources, "POLL_BATCH", 5)  # 5000 and 100, scaled down
    monkeypatch.setattr(sources, "POLL_SLACK", 2)
    client = await connected(ws, alice, token_for)
    for n in range(12):  # more than a read takes, all delivered through the layer
        await apublish("security_event", {"n": n})
        assert (await client.receive())["data"] == {"n": n}
    await sync_to_async(Event.objects.create)(
        event_type="security_event", priority=6, data={"n": "table only"}, origin="elsewhere:1:x"
    )
    # Reads every 0.5 s, 5 ids each, from just below the last delivered: a few reads.
    frame = await client.receive(timeout=10)
    assert frame["data"] == {"n": "table only"}


async def test_publish_many_stores_every_event_and_each_reaches_its_subscribers(
    ws, alice, token_for
):
    client = await connected(ws, alice, token_for)
    events = await sync_to_async(publish_many)(
        [
            ("health_update", {"component": "database", "n": 1}),
            ("security_event", {"severity": 8, "n": 2}, {"priority": 8}),
        ]
    )
    assert [e.data["n"] for e in events] == [1, 2]
    assert all(e.pk for e in events)
    # They arrived together: the higher priority first.
    assert (await client.receive_event("security_event"))["data"]["n"] == 2
    assert (await client.receive_event("health_update"))["data"]["n"] == 1


def test_publish_many_with_one_bad_item_publishes_none():
    stored = Event.objects.count()
    with pytest.raises(PublishError):
        publish_many([("health_update", {"n": 1}), ("no_such_event", {})])
    assert Event.objects.count() == stored


def test_what_is_derived_from_the_catalogue_follows_its_changes():
    """The sorted catalogue and expanded default subscriptions are kept between connects,
    and a type declared (or removed) since is seen at once."""
    before = catalogue.version()
    everything = frozenset(catalogue.names()) | {"test_late_type"}
    assert "test_late_type" not in access.expand(["family:security"], everything)
    catalogue.declare("test_late_type", family=Family.SECURITY, priority=5, permission=None)
    try:
        assert catalogue.version() != before
        assert "test_late_type" in {entry.name for entry in catalogue.all_types()}
        assert "test_late_type" in access.expand(["family:security"], everything)
    finally:
        catalogue.undeclare("test_late_type")
    assert "test_late_type" not in {entry.name for entry in catalogue.all_types()}
    assert "test_late_type" not in access.expand(["family:security"], everything)
