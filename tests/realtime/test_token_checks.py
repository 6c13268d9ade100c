"""What a connect checks of its token, and what it may skip once the token is known."""

import asyncio

import pytest
from django.contrib.auth.models import Group

from realtime import access
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


async def test_sockets_of_a_user_connecting_at_once_read_the_user_once(
    ws, alice, token_for, monkeypatch
):
    token = token_for(alice)
    reads = []
    read_principal = access.read_principal

    def counted(user):
        reads.append(user.pk)
        return read_principal(user)

    monkeypatch.setattr(access, "read_principal", counted)
    sockets = await asyncio.gather(*(ws("/ws", token=token) for _ in range(5)))
    for socket in sockets:
        assert (await socket.receive())["type"] == "connection_established"
    assert reads == [alice.pk]
