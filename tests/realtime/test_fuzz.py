"""Random frames thrown at a live consumer never crash it or the server."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime import hub as hub_module
from realtime.compat import CompatibleHubConsumer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
message_types = st.sampled_from(
    [*CompatibleHubConsumer.handlers, "auth", "", "event", "batch", "x" * 300]
)
known_fields = st.fixed_dictionaries(
    {},
    optional={
        "event_types": json_values
        | st.lists(
            st.sampled_from(
                ["security_event", "health_update", "zone_created", "user_action", "nope"]
            )
        ),
        "replace_existing": json_values,
        "min_priority": json_values | st.integers(-5, 15),
        "max_priority": json_values | st.integers(-5, 15),
        "categories": json_values,
        "sources": json_values,
        "token": json_values,
        # The DNS frontend's requests (realtime/compat.py)
        "limit": json_values | st.integers(-5, 2**70),
        "since": json_values | st.integers(-5, 2**70),
        "start_time": json_values | st.just("2026-01-01T00:00:00Z"),
        "end_time": json_values,
        "event_type": json_values | st.sampled_from(["health_update", "zone_created", "nope"]),
        "priority": json_values | st.sampled_from(["low", "high", "urgent"]),
        "recipients": json_values,
    },
)
frames = st.one_of(
    st.text(max_size=300),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {"type": message_types | json_values},
        optional={"data": known_fields | json_values, "id": json_values},
    ).map(json.dumps),
    # Request fields at the top level, as the DNS frontend sends them.
    st.tuples(message_types, known_fields).map(
        lambda pair: json.dumps({"type": pair[0], **pair[1]})
    ),
)


@pytest.mark.django_db(transaction=True)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(frames, min_size=1, max_size=20))
def test_random_frames_never_break_the_connection(alice, token_for, batch):
    token = token_for(alice)
    with override_settings(
        REALTIME={
            **_realtime_settings(),
            "MESSAGE_RATE": 10_000,
            "SUBSCRIPTION_RATE": 10_000,
            "AUTH_TIMEOUT": 30,
        }
    ):
        async_to_sync(_throw)(token, batch)


def _realtime_settings():
    from django.conf import settings as django_settings

    return django_settings.REALTIME


async def _throw(token, batch):
    from threatlens.asgi import application

    # Each example runs in an event loop of its own; a channel layer belongs to one loop.
    channel_layers.backends.clear()
    communicator = WebsocketCommunicator(application, f"/ws?token={token}")
    connected, _ = await communicator.connect()
    assert connected
    try:
        assert json.loads(await communicator.receive_from())["type"] == "connection_established"
        for frame in batch:
            await communicator.send_input({"type": "websocket.receive", "text": frame})
        await communicator.send_to(text_data=json.dumps({"type": "ping", "id": "final"}))
        while True:
            output = await communicator.receive_output(timeout=5)
            assert output["type"] != "websocket.close", f"closed by {batch!r}"
            text = output.get("text")
            if text and text != "pong" and json.loads(text).get("id") == "final":
                assert json.loads(text)["type"] == "pong"
                break
    finally:
        await communicator.disconnect()
        for hub in list(hub_module._hubs.values()):
            await hub.stop()
        hub_module._hubs.clear()
        channel_layers.backends.clear()
