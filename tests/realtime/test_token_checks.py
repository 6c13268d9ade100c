"""What a connect checks of its token, and what it may skip once the token is known."""

import pytest
from django.contrib.auth.models import Group

from realtime.hub import get_hub
from tests.sockets import in_thread

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_verified_token_is_refused_once_it_expires(ws, alice, token_for, clock):
    token = token_for(alice)
    first = await ws("/ws", token=token)
    assert (await first.receive())["type"] == "connection_established"  # verified, kept
    clock.advance(24 * 3600)
    again = await ws("/ws", token=token)
    error, code = await again.receive_close()
    assert (error["error_code"], code) == ("AUTH_FAILED", 1008)
    assert "expired" in error["message"]


async def test_a_token_known_to_work_skips_the_failure_counts(ws, alice, token_for, monkeypatch):
    token = token_for(alice)
    first = await ws("/ws", token=token)
    assert (await first.receive())["type"] == "connection_established"
    store = get_hub().store
    looked_up = []
    count = store.count

    async def counted(key, window):
        looked_up.append(key)
        return await count(key, window)

    monkeypatch.setattr(store, "count", counted)
    second = await ws("/ws", token=token)
    assert (await second.receive())["type"] == "connection_established"
    assert looked_up == []
    bad = await ws("/ws", token="forged")
    await bad.receive_close()
    assert len(looked_up) == 1  # unknown credentials are still counted


async def test_a_role_change_reaches_the_next_socket_at_once(ws, alice, token_for):
    token = token_for(alice)
    first = await ws("/ws", token=token)
    assert (await first.receive())["data"]["user"]["role"] == "analyst"

    def demote():
        alice.groups.set([Group.objects.get(name="viewer")])

    await in_thread(demote)
    second = await ws("/ws", token=token)
    assert (await second.receive_type("connection_established"))["data"]["user"]["role"] == (
        "viewer"
    )
