"""The Django admin: admins manage users, groups and permissions; viewers are refused;
the audit log is read-only there; changes made there are audited."""

import pytest
from django.contrib.auth.models import Group

from threatlens.audit.models import AuditLog
from threatlens.audit.services import record

pytestmark = pytest.mark.django_db

PAGES = [
    "/admin/",
    "/admin/auth/user/",
    "/admin/auth/group/",
    "/admin/auth/user/add/",
    "/admin/audit/auditlog/",
    "/admin/audit/auditlog/?action=auth.login",
    "/admin/audit/auditlog/?q=alice",
]


@pytest.mark.parametrize("url", PAGES)
def test_admin_pages_load_for_an_admin(client, carol, url):
    client.force_login(carol)
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("url", PAGES)
def test_admin_pages_send_a_viewer_to_the_login_page(client, bob, url):
    client.force_login(bob)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_an_analyst_is_refused_too(client, alice):
    client.force_login(alice)
    assert client.get("/admin/auth/user/").status_code == 302


def test_the_user_and_group_pages_of_a_persona_load(client, carol, bob):
    client.force_login(carol)
    assert client.get(f"/admin/auth/user/{bob.pk}/change/").status_code == 200
    group = Group.objects.get(name="analyst")
    assert client.get(f"/admin/auth/group/{group.pk}/change/").status_code == 200


def test_the_audit_log_is_read_only_in_the_admin(client, carol):
    entry = record("alert.update", target_type="incidents.alert", target_id="1")
    client.force_login(carol)

    assert client.get("/admin/audit/auditlog/add/").status_code == 403
    page = client.get(f"/admin/audit/auditlog/{entry.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.post(f"/admin/audit/auditlog/{entry.pk}/delete/").status_code == 403
    assert AuditLog.objects.filter(pk=entry.pk).exists()


def test_a_role_change_in_the_admin_is_audited_with_the_admin_as_actor(
    foundation_settings, client, carol, bob, audit_rows
):
    client.force_login(carol)
    analyst = Group.objects.get(name="analyst")
    form = {
        "username": "bob",
        "email": "bob@example.com",
        "first_name": "",
        "last_name": "",
        "is_active": "on",
        "groups": [str(analyst.pk)],
        "date_joined_0": bob.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": bob.date_joined.strftime("%H:%M:%S"),
        "initial-date_joined_0": bob.date_joined.strftime("%Y-%m-%d"),
        "initial-date_joined_1": bob.date_joined.strftime("%H:%M:%S"),
    }

    response = client.post(f"/admin/auth/user/{bob.pk}/change/", form, REMOTE_ADDR="192.0.2.50")

    assert response.status_code == 302, response.content.decode()[:3000]
    changes = [r for r in audit_rows("user.groups_changed", bob) if r.actor == carol]
    assert changes
    assert changes[0].old_values["roles"] == ["viewer"]
    assert changes[-1].new_values["roles"] == ["analyst"]
    assert all(r.ip_address == "192.0.2.50" for r in changes)


def test_a_group_permission_change_in_the_admin_is_audited(
    foundation_settings, client, carol, audit_rows
):
    from django.contrib.auth.models import Permission

    client.force_login(carol)
    viewer = Group.objects.get(name="viewer")
    kept = list(viewer.permissions.values_list("pk", flat=True))
    extra = Permission.objects.get(codename="receive_security")

    response = client.post(
        f"/admin/auth/group/{viewer.pk}/change/",
        {"name": "viewer", "permissions": [str(pk) for pk in [*kept, extra.pk]]},
    )

    assert response.status_code == 302
    (row,) = audit_rows("group.permissions_changed", viewer)
    assert row.actor == carol
    assert row.details == {"added": ["realtime.receive_security"], "removed": []}
