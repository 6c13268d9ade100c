"""One snapshot of a user's access serves all of the user's sockets and requests in a
process, and goes as soon as the access changes."""

import pytest
from django.contrib.auth.models import Group, Permission

from realtime import access
from realtime.catalogue import PUBLISH

pytestmark = pytest.mark.django_db


def test_sockets_and_requests_of_a_user_share_one_snapshot(alice, django_assert_num_queries):
    first = access.principal_for(alice)
    with django_assert_num_queries(0):
        again = access.principal_for(alice)
    assert again is first


def test_users_with_the_same_permissions_share_what_they_may_receive(make_user):
    one, two = make_user("dora", role="analyst"), make_user("erin", role="analyst")
    mine, theirs = access.principal_for(one), access.principal_for(two)
    assert mine is not theirs
    assert access.receivable_types(mine) is access.receivable_types(theirs)


def test_a_role_change_is_seen_at_once(bob, django_capture_on_commit_callbacks):
    assert access.principal_for(bob).role == "viewer"
    with django_capture_on_commit_callbacks(execute=True):
        bob.groups.set([Group.objects.get(name="admin")])
    principal = access.principal_for(bob)
    assert principal.role == "admin"
    assert principal.has_perm(PUBLISH)


def test_a_permission_change_is_seen_at_once(bob, django_capture_on_commit_callbacks):
    assert not access.principal_for(bob).has_perm(PUBLISH)
    with django_capture_on_commit_callbacks(execute=True):
        bob.user_permissions.add(Permission.objects.get(codename=PUBLISH.split(".")[1]))
    assert access.principal_for(bob).has_perm(PUBLISH)


@pytest.mark.django_db(transaction=True)
async def test_a_control_message_from_another_process_drops_the_snapshot(bob, fresh_hub):
    from asgiref.sync import sync_to_async

    from realtime.hub import get_hub

    read = sync_to_async(access.principal_for)
    stale = await read(bob)
    get_hub().dispatch({"type": "hub.control", "action": "recheck_user", "user_id": bob.pk})
    assert await read(bob) is not stale


def test_a_snapshot_is_read_again_after_its_time(bob, settings):
    stale = access.principal_for(bob)
    settings.REALTIME = {**settings.REALTIME, "ACCESS_CHECK_INTERVAL": 0}
    assert access.principal_for(bob) is not stale


def test_the_publish_endpoint_follows_a_permission_change(
    api_client, bob, token_for, django_capture_on_commit_callbacks
):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(bob)}")
    body = {"event_type": "config_change", "data": {"category": "test"}}
    assert api_client.post("/api/realtime/publish/", body, format="json").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        bob.user_permissions.add(Permission.objects.get(codename=PUBLISH.split(".")[1]))
    assert api_client.post("/api/realtime/publish/", body, format="json").status_code == 201
