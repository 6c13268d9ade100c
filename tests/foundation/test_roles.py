"""Roles: the groups, their permissions as data, role_of and create_or_update_user."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType

from threatlens.accounts.roles import (
    ROLE_PERMISSIONS,
    grant_role_permissions,
    permissions_for_role,
    role_of,
    roles_of,
)
from threatlens.accounts.services import AccountError, create_or_update_user
from threatlens.audit.models import AuditLog

pytestmark = pytest.mark.django_db

SAMPLE = {
    "incidents.view_alert",
    "incidents.add_alert",
    "incidents.change_alert",
    "incidents.delete_alert",
    "incidents.reassign_alert",
    "incidents.change_others_alert",
    "incidents.view_all_incidents",
    "incidents.take_alert_ownership",
    "dns.view_zone",
    "dns.view_all_zones",
    "dns.change_zone",
    "realtime.receive_security",
    "realtime.receive_system",
    "realtime.receive_dns",
    "realtime.receive_audit",
    "realtime.publish_event",
    "auth.change_user",
    "audit.view_auditlog",
}


def group_permissions(name):
    return {
        f"{app}.{code}"
        for app, code in Group.objects.get(name=name).permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


def test_the_three_role_groups_exist():
    assert set(Group.objects.values_list("name", flat=True)) >= {"admin", "analyst", "viewer"}


def test_admins_hold_every_permission():
    assert permissions_for_role("admin", SAMPLE) == SAMPLE
    every = {
        f"{app}.{code}"
        for app, code in Permission.objects.values_list("content_type__app_label", "codename")
    }
    assert group_permissions("admin") == every


def test_analysts_work_incidents_but_do_not_delete_reassign_or_see_audit():
    assert permissions_for_role("analyst", SAMPLE) == {
        "incidents.view_alert",
        "incidents.add_alert",
        "incidents.change_alert",
        "incidents.view_all_incidents",
        "incidents.take_alert_ownership",
        "dns.view_zone",
        "realtime.receive_security",
        "realtime.receive_system",
        "realtime.receive_dns",
    }


def test_viewers_only_read():
    assert permissions_for_role("viewer", SAMPLE) == {
        "incidents.view_alert",
        "dns.view_zone",
        "realtime.receive_system",
        "realtime.receive_dns",
    }


def test_existing_realtime_permissions_are_granted_by_the_migrations():
    assert {"realtime.receive_security", "realtime.receive_system", "realtime.receive_dns"} <= (
        group_permissions("analyst")
    )
    assert "realtime.receive_audit" not in group_permissions("analyst")
    assert "realtime.receive_security" not in group_permissions("viewer")
    assert "audit.view_auditlog" not in group_permissions("viewer")


def test_grant_adds_permissions_that_appear_later_and_only_missing_ones():
    # A permission as an app migrated later would bring; patterns match app_label.codename,
    # so fake the app label with a content type of its own.
    content_type = ContentType.objects.create(app_label="incidents", model="probe")
    view = Permission.objects.create(content_type=content_type, codename="view_probe", name="v")
    delete = Permission.objects.create(content_type=content_type, codename="delete_probe", name="d")

    added = grant_role_permissions()

    assert added == {"admin": 2, "analyst": 1, "viewer": 1}
    assert "incidents.view_probe" in group_permissions("viewer")
    assert "incidents.delete_probe" not in group_permissions("analyst")
    assert Group.objects.get(name="admin").permissions.filter(pk=delete.pk).exists()
    assert grant_role_permissions() == {"admin": 0, "analyst": 0, "viewer": 0}
    assert view.group_set.count() == 3


def test_grant_restores_nothing_it_offered_before_and_audits_nothing():
    viewer = Group.objects.get(name="viewer")
    Group.permissions.through.objects.filter(group=viewer).delete()
    AuditLog.objects.all().delete()

    assert grant_role_permissions()["viewer"] == 0

    assert group_permissions("viewer") == set()
    assert not AuditLog.objects.exists()


def test_a_recreated_role_group_gets_its_defaults_again():
    Group.objects.get(name="viewer").delete()
    every = {
        f"{app}.{code}"
        for app, code in Permission.objects.values_list("content_type__app_label", "codename")
    }
    expected = permissions_for_role("viewer", every)

    assert grant_role_permissions()["viewer"] == len(expected)
    assert group_permissions("viewer") == expected
    assert {"realtime.receive_system", "realtime.receive_dns"} <= expected


def test_a_permission_removed_in_the_admin_stays_removed_after_migrate(client, carol):
    """Every `make run` runs `migrate`; its post_migrate grant must not undo the admin."""
    from django.core.management import call_command

    analyst = Group.objects.get(name="analyst")
    removed = Permission.objects.get(codename="add_alert", content_type__app_label="incidents")
    kept = analyst.permissions.exclude(pk=removed.pk).values_list("pk", flat=True)
    client.force_login(carol)
    response = client.post(
        f"/admin/auth/group/{analyst.pk}/change/",
        {"name": "analyst", "permissions": [str(pk) for pk in kept]},
    )
    assert response.status_code == 302
    assert "incidents.add_alert" not in group_permissions("analyst")

    call_command("migrate", verbosity=0, interactive=False)
    call_command("migrate", verbosity=0, interactive=False)

    assert "incidents.add_alert" not in group_permissions("analyst")
    assert "incidents.view_alert" in group_permissions("analyst")


def test_role_patterns_are_declared_for_every_role():
    assert set(ROLE_PERMISSIONS) == {"admin", "analyst", "viewer"}


def test_role_of_names_the_strongest_role(alice, bob, carol, make_user):
    assert (role_of(alice), role_of(bob), role_of(carol)) == ("analyst", "viewer", "admin")
    both = make_user("erin", role="viewer")
    both.groups.add(Group.objects.get(name="analyst"))
    assert role_of(both) == "analyst"
    assert roles_of(both) == ["analyst", "viewer"]
    assert role_of(make_user("frank")) is None
    assert role_of(make_user("root", is_superuser=True)) == "admin"
    assert role_of(None) is None


def test_create_or_update_user_creates_an_analyst(carol):
    user, created = create_or_update_user(
        "dave", role="analyst", password="long-enough-pass-99", email="d@example.com", actor=carol
    )
    assert created
    assert user.check_password("long-enough-pass-99")
    assert role_of(user) == "analyst"
    assert not user.is_staff
    row = AuditLog.objects.get(action="user.created", target_id=str(user.pk))
    assert row.actor == carol
    assert row.new_values["role"] == "analyst"
    # One summary row, not one per field or group.
    assert list(
        AuditLog.objects.filter(target_id=str(user.pk)).values_list("action", flat=True)
    ) == ["user.created"]


def test_create_or_update_user_moves_a_user_between_roles(bob):
    other = Group.objects.create(name="night-shift")
    bob.groups.add(other)

    user, created = create_or_update_user("bob", role="admin", password=None)

    assert not created
    assert set(user.groups.values_list("name", flat=True)) == {"admin", "night-shift"}
    assert user.is_staff
    row = AuditLog.objects.get(action="user.updated")
    assert row.old_values == {"role": "viewer", "is_staff": False}
    assert row.new_values == {"role": "admin", "is_staff": True}
    assert row.details == {"password_changed": False}

    create_or_update_user("bob", role="viewer", password=None)
    user.refresh_from_db()
    assert not user.is_staff


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"role": "boss", "password": "long-enough-pass-99"}, "Unknown role"),
        ({"role": "viewer", "password": None}, "password is required"),
        ({"role": "viewer", "password": "short"}, "too short"),
        ({"role": "viewer", "password": "long-enough-pass-99", "email": "nope"}, "email"),
    ],
)
def test_create_or_update_user_refuses_bad_input_and_writes_nothing(kwargs, message):
    with pytest.raises(AccountError, match=message):
        create_or_update_user("dave", **kwargs)
    assert not Group.objects.get(name="viewer").user_set.exists()
    assert not AuditLog.objects.exists()


def test_an_invalid_username_is_refused():
    with pytest.raises(AccountError):
        create_or_update_user("no spaces allowed", role="viewer", password="long-enough-pass-99")
