"""DNS events over the hub socket: only the zone's readers get them; bulk progress frames."""

import contextlib

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from dns import bulk, services
from realtime import hub as hub_module
from realtime import store
from tests.dns.helpers import grant
from tests.sockets import Client

pytestmark = pytest.mark.django_db(transaction=True)

DNS_EVENTS = [
    "zone_updated",
    "record_created",
    "bulk_operation_progress",
    "bulk_operation_complete",
    "zone_access_changed",
]


@pytest.fixture(autouse=True)
async def _fresh_hub():
    store.reset_local_store()
    yield
    for hub in list(hub_module._hubs.values()):
        with contextlib.suppress(Exception):
            await hub.stop()
    hub_module._hubs.clear()
    # The hub's queries ran in asgiref's shared worker thread: close its connection there,
    # or PostgreSQL cannot drop the test database at the end of the run.
    await sync_to_async(connections.close_all)()


@pytest.fixture
async def connect(token_for):
    from threatlens.asgi import application

    clients = []

    async def open_socket(user):
        communicator = WebsocketCommunicator(application, f"/ws?token={token_for(user)}")
        client = Client(communicator)
        clients.append(client)
        await client.connect()
        assert await client.receive_type("connection_established")
        await client.send({"type": "subscribe", "data": {"event_types": DNS_EVENTS}})
        reply = await client.receive_type("subscription_updated")
        assert set(DNS_EVENTS) <= set(reply["data"]["subscriptions"]), reply
        return client

    yield open_socket
    for client in clients:
        await client.disconnect()


async def events_until(client, done, timeout=10):
    """Event frames (batches unpacked) until `done(received)` is true."""
    received = []
    while not done(received):
        frame = await client.receive(timeout=timeout)
        for event in frame["events"] if frame.get("type") == "batch" else [frame]:
            if event.get("type") == "event":
                received.append(event)
    return received


def seen(*event_types):
    return lambda received: set(event_types) <= {e["event_type"] for e in received}


@sync_to_async
def zone_for(reader, *, name):
    zone = services.create_zone(None, {"name": name, "email": "h@example.com"})
    grant(zone, reader, can_change=True)
    return zone


async def test_a_user_without_access_to_a_zone_receives_none_of_its_events(
    connect, alice, bob, carol
):
    zone = await zone_for(alice, name="private.example")
    reader, outsider = await connect(alice), await connect(bob)
    await sync_to_async(services.create_record)(
        carol, zone.pk, {"name": "www", "record_type": "A", "value": "192.0.2.1"}
    )
    await sync_to_async(services.update_zone)(carol, zone.pk, {"description": "x"}, version=None)
    received = await events_until(reader, seen("record_created", "zone_updated"))
    assert [e["event_type"] for e in received] == ["record_created", "zone_updated"]
    assert received[0]["type"] == "event"
    assert received[0]["data"]["zone_name"] == "private.example"
    # The console names who made a change, never "user #N".
    assert {e["data"]["username"] for e in received} == {"carol"}
    assert await outsider.receive_nothing()


async def test_a_zone_grant_reaches_the_grantee_live_and_nobody_else(connect, alice, bob, carol):
    zone = await sync_to_async(services.create_zone)(
        carol, {"name": "granted.example", "email": "h@example.com"}
    )
    grantee, outsider = await connect(alice), await connect(bob)
    access = await sync_to_async(services.grant_access)(carol, zone.pk, user=alice)
    (event,) = await events_until(grantee, seen("zone_access_changed"))
    assert event["data"]["zone_id"] == str(zone.pk)
    assert event["data"]["action"] == "granted" and event["data"]["can_change"] is False
    assert event["data"]["zone"]["name"] == "granted.example"
    assert event["data"]["username"] == "carol"
    assert await outsider.receive_nothing()
    await sync_to_async(services.revoke_access)(carol, access.pk)
    (event,) = await events_until(grantee, seen("zone_access_changed"))
    assert event["data"]["action"] == "revoked" and "zone" not in event["data"]
    assert await outsider.receive_nothing()


async def test_bulk_progress_frames_reach_the_zones_readers(connect, alice, bob, carol):
    zone = await zone_for(alice, name="bulk.example")
    reader, outsider = await connect(alice), await connect(bob)
    items = [{"name": f"h{n}", "record_type": "A", "value": "192.0.2.1"} for n in range(400)]
    job = await sync_to_async(bulk.start_bulk_operation)(carol, zone.pk, "create", items)
    await sync_to_async(bulk.run_bulk_operation)(job.pk)
    received = await events_until(
        reader,
        lambda got: (
            seen("bulk_operation_complete")(got)
            and any(e["data"].get("progress") == 1.0 for e in got)
        ),
    )
    (complete,) = [e for e in received if e["event_type"] == "bulk_operation_complete"]
    assert complete["data"]["status"] == "succeeded"
    # Equal priorities keep their order; the complete event may overtake the last one.
    progress = [
        e["data"]["progress"] for e in received if e["event_type"] == "bulk_operation_progress"
    ]
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) > 5
    assert await outsider.receive_nothing()


async def test_config_change_never_names_a_zone_the_user_may_not_read(token_for, bob, carol, ws):
    """A viewer subscribed to config_change learns that something changed, not which zone
    (REST answers 404 for it); an admin gets the zone."""
    sockets = {}
    for user in (bob, carol):
        client = await ws("/ws", token=token_for(user))
        assert await client.receive_type("connection_established")
        await client.send({"type": "subscribe", "data": {"event_types": ["config_change"]}})
        assert await client.receive_type("subscription_updated")
        sockets[user.username] = client
    zone = await sync_to_async(services.create_zone)(
        carol, {"name": "secret-admin.example", "email": "h@example.com"}
    )

    def config_changes(received):
        return [e for e in received if e["event_type"] == "config_change"]

    (seen_by_bob,) = config_changes(await events_until(sockets["bob"], config_changes))
    assert seen_by_bob["data"]["action"] == "zone_created"
    assert "secret-admin" not in str(seen_by_bob) and "zone_id" not in seen_by_bob["data"]
    (seen_by_carol,) = config_changes(await events_until(sockets["carol"], config_changes))
    assert seen_by_carol["data"]["zone_name"] == "secret-admin.example"
    assert seen_by_carol["data"]["zone_id"] == str(zone.pk)
