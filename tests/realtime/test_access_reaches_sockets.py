"""Access changes reach open sockets even when no change notice travels (another process
in the embedded default, Redis down), and a session's end closes the sockets it opened."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.test import Client as HttpClient
from django.utils import timezone

from tests.sockets import in_thread
from tests.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)
User = get_user_model()


@pytest.fixture(autouse=True)
def _quick_access_checks(settings):
    settings.REALTIME = {**settings.REALTIME, "ACCESS_CHECK_INTERVAL": 0.2}


def quietly(change):
    """Run `change` in a thread the way another process would: no signal, no notice."""
    return in_thread(change)


def logged_in(user):
    http = HttpClient()
    http.force_login(user)
    return http


async def session_socket(ws, http):
    cookie = f"sessionid={http.cookies['sessionid'].value}".encode()
    client = await ws("/ws", headers=[(b"cookie", cookie)])
    assert (await client.receive_type("connection_established"))["type"]
    return client


async def test_a_deactivation_without_notice_closes_the_socket(ws, carol, token_for):
    client = await ws("/ws", token=token_for(carol))
    await client.receive_type("connection_established")
    await quietly(lambda: User.objects.filter(pk=carol.pk).update(is_active=False))
    error, code = await client.receive_close(timeout=3)
    assert (error["error_code"], code) == ("AUTH_FAILED", 1008)


async def test_a_new_socket_of_a_user_deactivated_without_notice_is_refused(ws, carol, token_for):
    first = await ws("/ws", token=token_for(carol))  # the snapshot is now held
    await first.receive_type("connection_established")
    await first.disconnect()
    await quietly(lambda: User.objects.filter(pk=carol.pk).update(is_active=False))

    async def refused():
        """A new socket's (error frame, close code), or None while it is still let in (the
        snapshot is held for up to ACCESS_CHECK_INTERVAL)."""
        client = await ws("/ws", token=token_for(carol))
        first = await client.receive()
        if first["type"] == "connection_established":
            await client.disconnect()
            return None
        error, code = await client.receive_close()
        return (first if first["type"] == "error" else error), code

    error, code = await until(
        refused, "a new socket of the deactivated user is refused", interval=0.1
    )
    assert (error["error_code"], code) == ("AUTH_FAILED", 1008)


async def test_a_demotion_without_notice_takes_admin_events_away(ws, carol, token_for):
    client = await ws("/ws", token=token_for(carol))
    greeting = await client.receive_type("connection_established")
    assert "user_action" in greeting["data"]["subscriptions"]

    def demote():
        User.groups.through.objects.filter(user_id=carol.pk).delete()
        viewer = Group.objects.get(name="viewer")
        User.groups.through.objects.create(user_id=carol.pk, group_id=viewer.pk)
        User.objects.filter(pk=carol.pk).update(is_staff=False)

    await quietly(demote)

    async def subscriptions_without_admin_events():
        await client.send({"type": "get_subscriptions", "id": "s"})
        reply = await client.receive_type("response")
        return reply if "user_action" not in reply["data"]["subscriptions"] else None

    reply = await until(
        subscriptions_without_admin_events, "the access check takes user_action away", interval=0.1
    )
    assert "user_action" not in reply["data"]["available"]


async def test_logging_out_closes_the_sockets_of_that_session(ws, carol, settings):
    settings.REALTIME = {**settings.REALTIME, "ACCESS_CHECK_INTERVAL": 60}  # the notice only
    http = await in_thread(logged_in, carol)
    other_session = await in_thread(logged_in, carol)
    client = await session_socket(ws, http)
    other = await session_socket(ws, other_session)
    response = await in_thread(http.post, "/logout/")
    assert response.status_code == 302
    error, code = await client.receive_close()
    assert (error["error_code"], code) == ("AUTH_FAILED", 1008)
    await other.send({"type": "ping", "id": "p"})
    assert (await other.receive_type("pong"))["id"] == "p"  # another session lives on


async def test_an_expired_session_closes_its_sockets(ws, carol):
    http = await in_thread(logged_in, carol)
    client = await session_socket(ws, http)
    past = timezone.now() - timedelta(seconds=1)
    await quietly(lambda: Session.objects.update(expire_date=past))
    error, code = await client.receive_close(timeout=3)
    assert (error["error_code"], code) == ("AUTH_FAILED", 1008)


async def test_a_password_change_closes_the_sockets_of_its_sessions(ws, carol):
    http = await in_thread(logged_in, carol)
    client = await session_socket(ws, http)

    def change_password():
        user = User.objects.get(pk=carol.pk)
        user.set_password("a brand new secret")
        user.save()

    await quietly(change_password)
    error, code = await client.receive_close(timeout=3)
    assert (error["error_code"], code) == ("AUTH_FAILED", 1008)
