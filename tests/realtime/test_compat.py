"""The DNS management server's own frontends, speaking exactly as they do: their paths
(`/api/websocket/ws`, `/api/websocket/ws/<connection_type>`), the flat envelope, top-level
`event_types`, and their five extra requests (docs/migrating.md)."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from realtime.models import Event
from realtime.publishing import Recipients, publish
from threatlens.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

DNS_PATH = "/api/websocket/ws"


async def connected(ws, path, user, token_for):
    client = await ws(path, token=token_for(user))
    assert (await client.receive_type("connection_established"))["data"]["user"]
    return client


async def subscribed(client, event_types):
    """The DNS frontend's subscribe: `event_types` at the top level."""
    await client.send({"type": "subscribe", "event_types": event_types})
    reply = await client.receive_type("subscription_updated")
    assert set(event_types) <= set(reply["subscriptions"]), reply
    return reply


async def frames_of(client, *types):
    """The first frame of each of these types, whatever order they come in."""
    frames = {}
    while set(types) - set(frames):
        frame = await client.receive(timeout=5)
        if frame["type"] in types:
            frames.setdefault(frame["type"], frame)
    return frames


@sync_to_async
def published(event_type, data, **options):
    return publish(event_type, data, **options)


def health(n):
    return {"component": "bind9", "status": "healthy", "metrics": {}, "n": n}


# --- paths and envelope ---------------------------------------------------------------------


async def test_a_zone_created_over_rest_arrives_as_a_zone_created_frame(
    ws, carol, token_for, api_client
):
    client = await connected(ws, DNS_PATH, carol, token_for)
    await subscribed(client, ["zone_created"])
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(carol)}")
    reply = await sync_to_async(api_client.post)(
        "/api/dns/zones/", {"name": "corp.example", "email": "h@corp.example"}, format="json"
    )
    assert reply.status_code == 201, reply.json()

    frame = await client.receive_type("zone_created", timeout=5)
    assert set(frame) == {"type", "data", "timestamp", "priority", "metadata"}
    assert frame["data"]["zone_name"] == "corp.example"
    assert frame["priority"] in {"low", "normal", "high", "critical"}
    assert frame["metadata"]["message_id"] == str(
        (await sync_to_async(Event.objects.get)(event_type="zone_created")).pk
    )


async def test_a_burst_goes_out_one_frame_per_event_never_a_batch(ws, carol, token_for):
    client = await connected(ws, DNS_PATH, carol, token_for)
    await subscribed(client, ["health_update"])
    for n in range(5):
        await published("health_update", health(n))
    frames = [await client.receive_type("health_update") for _ in range(5)]
    assert [frame["data"]["n"] for frame in frames] == [0, 1, 2, 3, 4]


async def test_the_per_topic_path_is_subscribed_to_its_topic(ws, carol, token_for):
    client = await ws(f"{DNS_PATH}/health", token=token_for(carol))
    hello = await client.receive_type("connection_established")
    assert "health_update" in hello["data"]["subscriptions"]
    assert "zone_created" not in hello["data"]["subscriptions"]
    await published("health_update", health(1))
    assert (await client.receive_type("health_update"))["data"]["n"] == 1


async def test_the_documented_hub_keeps_its_envelope(ws, carol, token_for):
    client = await connected(ws, "/ws", carol, token_for)
    await subscribed(client, ["health_update"])  # top-level event_types on /ws too
    await published("health_update", health(1))
    frame = await client.receive_event("health_update")
    assert frame["type"] == "event" and frame["event_type"] == "health_update"


async def test_envelope_flat_on_ws_gives_the_flat_envelope(ws, carol, token_for):
    client = await connected(ws, "/ws?envelope=flat", carol, token_for)
    await subscribed(client, ["health_update", "new_alert"])
    await published("health_update", health(1))
    frame = await client.receive_type("health_update")
    assert frame["type"] == "health_update" and "metadata" in frame


async def test_an_unknown_envelope_is_answered_with_an_error(ws, carol, token_for):
    client = await ws("/ws?envelope=fancy", token=token_for(carol))
    error = await client.receive_type("error")
    assert error["error_code"] == "INVALID_MESSAGE"


async def test_a_top_level_unsubscribe_works(ws, carol, token_for):
    client = await connected(ws, DNS_PATH, carol, token_for)
    await subscribed(client, ["zone_created", "zone_deleted"])
    await client.send({"type": "unsubscribe", "event_types": ["zone_deleted"]})
    reply = await client.receive_type("subscription_updated")
    assert reply["data"]["removed"] == ["zone_deleted"]
    assert "zone_created" in reply["subscriptions"]


async def test_an_expired_session_is_a_session_expired_frame(ws, alice, clock):
    from datetime import timedelta

    from rest_framework_simplejwt.tokens import AccessToken

    token = await sync_to_async(AccessToken.for_user)(alice)
    token.set_exp(lifetime=timedelta(seconds=60))
    client = await ws(DNS_PATH, token=str(token))
    await client.receive_type("connection_established")
    clock.advance(61)
    frame = await client.receive_type("session_expired", timeout=5)  # the hub looks each second
    assert frame["data"]["reason"] == "token_expired"
    _, code = await client.receive_close(timeout=5)
    assert code == 1008


async def test_an_unknown_path_is_refused_before_the_handshake(caplog):
    communicator = WebsocketCommunicator(application, "/api/websocket/nowhere?token=secret")
    connected_, _ = await communicator.connect()
    assert not connected_
    assert "unknown path /api/websocket/nowhere" in caplog.text
    assert "secret" not in caplog.text
    assert "Traceback" not in caplog.text


async def test_an_unknown_connection_type_is_refused(fresh_hub):
    communicator = WebsocketCommunicator(application, "/api/websocket/ws/nonsense")
    connected_, _ = await communicator.connect()
    assert not connected_


# --- recent events, replay, emit ------------------------------------------------------------


async def test_get_recent_events_returns_only_events_the_user_may_see(ws, bob, carol, token_for):
    await published("health_update", health(1))
    await published("security_alert", {"severity": "high", "message": "nope"})
    await published(
        "zone_created", {"zone_name": "hidden.example"}, recipients=Recipients(users={carol.pk})
    )
    await published("health_update", health(2))
    client = await connected(ws, DNS_PATH, bob, token_for)

    await client.send({"type": "get_recent_events", "id": "r1"})
    reply = await client.receive_type("recent_events")
    assert reply["id"] == "r1"
    events = reply["data"]["events"]
    assert [e["data"]["n"] for e in events if e["type"] == "health_update"] == [1, 2]
    assert not {"security_alert", "zone_created"} & {e["type"] for e in events}
    assert all(e["data"].get("user_id", bob.pk) == bob.pk for e in events)  # own user events

    await client.send(
        {"type": "get_recent_events", "event_types": ["security_alert", "zone_created"]}
    )
    reply = await client.receive_type("recent_events")
    assert reply["data"]["events"] == []
    assert [r["event_type"] for r in reply["data"]["refused"]] == ["security_alert"]


async def test_get_recent_events_keeps_the_newest_up_to_the_limit(ws, carol, token_for):
    for n in range(4):
        await published("health_update", health(n))
    client = await connected(ws, DNS_PATH, carol, token_for)
    await client.send({"type": "get_recent_events", "event_types": ["health_update"], "limit": 2})
    reply = await client.receive_type("recent_events")
    assert [e["data"]["n"] for e in reply["data"]["events"]] == [2, 3]


async def test_start_replay_sends_the_stored_events_marked_replayed(ws, carol, token_for):
    first = await published("health_update", health(1))
    await published("health_update", health(2))
    client = await connected(ws, DNS_PATH, carol, token_for)
    await client.send({"type": "start_replay", "event_types": ["health_update"], "since": first.pk})
    started = await client.receive_type("replay_started")
    assert started["data"]["total"] == 1
    frame = await client.receive_type("health_update")
    assert frame["data"]["n"] == 2 and frame["replayed"] is True
    done = await client.receive_type("replay_complete")
    assert done["data"]["replayed"] == 1 and done["data"]["complete"] is True

    await client.send({"type": "get_replay_status"})
    status = await client.receive_type("replay_status")
    assert status["data"]["replay_id"] == started["data"]["replay_id"]
    assert status["data"]["active"] is False
    await client.send({"type": "stop_replay"})
    assert (await client.receive_type("replay_stopped"))["data"]["stopped"] is False


async def test_emit_event_is_refused_without_the_publish_permission(ws, alice, token_for):
    client = await connected(ws, DNS_PATH, alice, token_for)
    await client.send(
        {"type": "emit_event", "event_type": "health_update", "data": health(1), "id": "e1"}
    )
    error = await client.receive_type("error")
    assert error["error_code"] == "PERMISSION_DENIED" and error["id"] == "e1"
    assert "publish" in error["message"]
    assert not await sync_to_async(Event.objects.filter(event_type="health_update").exists)()


async def test_emit_event_publishes_for_a_publisher(ws, carol, token_for):
    client = await connected(ws, DNS_PATH, carol, token_for)
    await subscribed(client, ["health_update"])
    await client.send(
        {"type": "emit_event", "event_type": "health_update", "data": health(7), "priority": "high"}
    )
    # The event may come before or after the reply.
    frames = await frames_of(client, "event_emitted", "health_update")
    emitted, frame = frames["event_emitted"], frames["health_update"]
    assert frame["data"]["n"] == 7 and frame["priority"] == "high"
    assert frame["metadata"]["message_id"] == emitted["data"]["message_id"]


async def test_emit_event_with_a_bad_event_is_an_invalid_message(ws, carol, token_for):
    client = await connected(ws, DNS_PATH, carol, token_for)
    await client.send({"type": "emit_event", "event_type": "no_such_event", "data": {}})
    error = await client.receive_type("error")
    assert error["error_code"] == "INVALID_MESSAGE"
    assert not await sync_to_async(Event.objects.filter(event_type="no_such_event").exists)()


@pytest.mark.parametrize(
    "request_fields",
    [
        {"since": 2**70},
        {"since": "later"},
        {"start_time": "yesterday"},
        {"start_time": "2026-01-01T00:00:00"},  # no zone
        {"event_types": "zone_created"},
    ],
)
async def test_a_bad_replay_request_is_an_invalid_message(ws, carol, token_for, request_fields):
    client = await connected(ws, DNS_PATH, carol, token_for)
    await client.send({"type": "start_replay", **request_fields})
    assert (await client.receive_type("error"))["error_code"] == "INVALID_MESSAGE"
    await client.send({"type": "get_replay_status"})
    assert (await client.receive_type("replay_status"))["data"]["active"] is False


async def test_a_reconnect_with_since_replays_in_the_flat_envelope(ws, carol, token_for):
    first = await published("health_update", health(1))
    await published("health_update", health(2))
    client = await ws(f"{DNS_PATH}/health?since={first.pk}", token=token_for(carol))
    frame = await client.receive_type("health_update")
    assert frame["data"]["n"] == 2 and frame["replayed"] is True and "metadata" in frame
    assert (await client.receive_type("replay_complete"))["data"]["replayed"] == 1
