"""Logins, logouts and every user, role and permission change are audited from the start;
access changes reach the user's live sockets."""

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import Group, Permission

from realtime.models import Event
from tests.personas import PASSWORD
from threatlens.audit.context import audit_context
from threatlens.audit.models import AuditLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def control_messages(monkeypatch):
    """Calls of realtime.control, as (function name, user id)."""
    sent = []
    for name in ("user_access_changed", "disconnect_user"):
        monkeypatch.setattr(
            f"realtime.control.{name}",
            lambda user_id, *, _name=name, **kw: sent.append((_name, user_id)),
        )
    return sent


def permission_events(user):
    return [e.data for e in Event.objects.filter(event_type="permission_changed")
            if e.recipient_users == [user.pk]]  # fmt: skip


def test_session_login_and_logout_are_audited_and_published(
    foundation_settings, client, carol, password, audit_rows, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/login/", {"username": "carol", "password": password}, REMOTE_ADDR="198.51.100.4"
        )
    assert response.status_code == 302
    (login,) = audit_rows("auth.login")
    assert (login.actor, login.ip_address, login.details) == (
        carol, "198.51.100.4", {"method": "session"},
    )  # fmt: skip
    assert Event.objects.get(event_type="user_login").data["method"] == "session"

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/logout/")
    (logout,) = audit_rows("auth.logout")
    assert logout.actor == carol
    assert Event.objects.get(event_type="user_logout").recipient_users == [carol.pk]


def test_failed_session_login_is_audited_with_the_attempted_username(
    client, audit_rows, foundation_settings
):
    client.post(
        "/admin/login/", {"username": "nobody", "password": "pw"}, REMOTE_ADDR="203.0.113.9"
    )
    (row,) = audit_rows("auth.login_failed")
    assert row.details == {"username": "nobody", "method": "session"}
    assert row.ip_address == "203.0.113.9"


def test_user_field_changes_are_audited_with_old_and_new_values(bob, carol, audit_rows):
    bob.email = "robert@example.com"
    bob.is_staff = True
    with audit_context(actor=carol):
        bob.save()

    (row,) = audit_rows("user.changed", bob)
    assert row.actor == carol
    assert row.old_values == {"email": "bob@example.com", "is_staff": False}
    assert row.new_values == {"email": "robert@example.com", "is_staff": True}


def test_saving_last_login_alone_writes_no_audit_row(bob, django_assert_num_queries):
    from django.contrib.auth.models import update_last_login

    AuditLog.objects.all().delete()
    with django_assert_num_queries(1):  # the UPDATE, no read of the old values
        update_last_login(None, bob)
    assert not AuditLog.objects.exists()


def test_password_changes_are_audited_but_not_their_values(bob, audit_rows):
    bob.set_password("another-long-passphrase")
    bob.save()
    (row,) = audit_rows("user.password_changed")
    assert row.old_values is None and row.new_values is None


class QuickPBKDF2(PBKDF2PasswordHasher):
    """A hasher preferred to the tests' MD5, at one iteration (cheap)."""

    iterations = 1


def test_a_hash_upgraded_at_login_is_not_a_password_change(bob, audit_rows, settings):
    settings.PASSWORD_HASHERS = [
        f"{__name__}.QuickPBKDF2",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    old_hash = bob.password
    assert authenticate(username="bob", password=PASSWORD) == bob
    bob.refresh_from_db()
    assert bob.password != old_hash and bob.password.startswith("pbkdf2_sha256$")
    assert audit_rows("user.password_changed") == []


def test_deactivation_is_audited_published_and_reaches_the_sockets(
    bob, audit_rows, control_messages, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        bob.is_active = False
        bob.save(update_fields=["is_active"])

    (row,) = audit_rows("user.changed")
    assert (row.old_values, row.new_values) == ({"is_active": True}, {"is_active": False})
    (data,) = permission_events(bob)
    assert data["is_active"] is False
    assert data["permissions"] == []
    assert data["username"] == "bob"
    assert control_messages == [("user_access_changed", bob.pk)]


def test_a_role_change_is_audited_and_published_once_with_the_final_state(
    bob, carol, audit_rows, control_messages, django_capture_on_commit_callbacks
):
    analyst = Group.objects.get(name="analyst")
    with django_capture_on_commit_callbacks(execute=True), audit_context(actor=carol):
        bob.groups.set([analyst])  # removes viewer, then adds analyst

    rows = audit_rows("user.groups_changed", bob)[1:]  # [0]: the fixture's
    assert [r.actor for r in rows] == [carol, carol]
    assert rows[0].old_values == {"groups": ["viewer"], "roles": ["viewer"]}
    assert rows[-1].new_values == {"groups": ["analyst"], "roles": ["analyst"]}
    (data,) = permission_events(bob)
    assert data["role"] == "analyst"
    assert "realtime.receive_security" in data["permissions"]
    assert data["is_active"] is True
    assert control_messages == [("user_access_changed", bob.pk)]


def test_adding_members_from_the_group_side_is_audited_per_user(alice, bob, audit_rows):
    Group.objects.get(name="admin").user_set.add(alice, bob)
    (for_alice,) = audit_rows("user.groups_changed", alice)[1:]  # [0]: the fixture's
    (for_bob,) = audit_rows("user.groups_changed", bob)[1:]
    assert for_alice.new_values["groups"] == ["admin", "analyst"]
    assert for_bob.new_values["groups"] == ["admin", "viewer"]


def test_clearing_a_users_groups_is_audited(bob, audit_rows):
    bob.groups.clear()
    row = audit_rows("user.groups_changed", bob)[-1]
    assert (row.old_values["groups"], row.new_values["groups"]) == (["viewer"], [])


def test_user_permission_changes_are_audited(bob, audit_rows, django_capture_on_commit_callbacks):
    permission = Permission.objects.get(codename="receive_security")
    with django_capture_on_commit_callbacks(execute=True):
        bob.user_permissions.add(permission)

    (row,) = audit_rows("user.permissions_changed")
    assert row.new_values == {"permissions": ["realtime.receive_security"]}
    assert row.details["added"] == ["realtime.receive_security"]
    assert "realtime.receive_security" in permission_events(bob)[0]["permissions"]


def test_group_permission_changes_are_audited_and_reach_every_member(
    alice, make_user, audit_rows, django_capture_on_commit_callbacks
):
    other_analyst = make_user("dave", role="analyst")
    permission = Permission.objects.get(codename="receive_audit")
    with django_capture_on_commit_callbacks(execute=True):
        Group.objects.get(name="analyst").permissions.add(permission)

    (row,) = audit_rows("group.permissions_changed")
    assert row.target_repr == "analyst"
    assert row.details == {"added": ["realtime.receive_audit"], "removed": []}
    assert "realtime.receive_audit" in permission_events(alice)[0]["permissions"]
    assert permission_events(other_analyst)


def test_removing_a_permission_from_the_permission_side_is_audited(audit_rows):
    permission = Permission.objects.get(codename="receive_system")
    permission.group_set.remove(Group.objects.get(name="viewer"))
    (row,) = audit_rows("group.permissions_changed")
    assert row.target_repr == "viewer"
    assert row.details["removed"] == ["realtime.receive_system"]


def test_creating_and_deleting_users_is_audited(make_user, audit_rows, control_messages,
                                               django_capture_on_commit_callbacks):  # fmt: skip
    dave = make_user("dave")
    (created,) = audit_rows("user.created")
    assert created.new_values["username"] == "dave"
    dave_id = dave.pk
    with django_capture_on_commit_callbacks(execute=True):
        dave.delete()
    (deleted,) = audit_rows("user.deleted")
    assert deleted.target_id == str(dave_id)
    assert ("disconnect_user", dave_id) in control_messages


def test_user_changes_publish_user_action_to_admins(bob, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        bob.email = "b@example.org"
        bob.save()
    event = Event.objects.get(event_type="user_action")
    assert event.data["action"] == "user.changed"
    assert event.data["target_id"] == str(bob.pk)
