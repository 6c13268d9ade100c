"""Every write path broadcasts: Django admin forms and plain save()/delete() calls."""

import re
from contextlib import contextmanager

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.db import transaction
from django.test import Client

from dns import services
from dns.models import Forwarder, Record, RpzRule, ThreatFeed, Zone, ZoneAccess
from tests.dns.helpers import events, grant, record_count, refreshed
from threatlens.audit.models import AuditLog
from threatlens.writeguard import DirectWrite


@pytest.fixture
def admin_client(carol):
    client = Client()
    client.force_login(carol)
    return client


def zone_form(**overrides):
    form = {
        "name": "admin.example",
        "zone_type": "master",
        "primary_ns": "",
        "email": "h@example.com",
        "refresh": 3600,
        "retry": 900,
        "expire": 1209600,
        "minimum": 3600,
        "default_ttl": 3600,
        "masters": "[]",
        "forwarders": "[]",
        "is_active": "on",
        "description": "",
        "access-TOTAL_FORMS": 0,
        "access-INITIAL_FORMS": 0,
    }
    form.update(overrides)
    return form


def test_a_zone_added_in_the_admin_is_audited_and_announced(
    admin_client, carol, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        reply = admin_client.post("/admin/dns/zone/add/", zone_form(name="Admin.Example."))
    assert reply.status_code == 302, reply.content.decode()[:2000]
    zone = Zone.objects.get(name="admin.example")
    assert zone.serial > 0 and zone.created_by == carol
    (event,) = events("zone_created")
    assert event.data["user_id"] == str(carol.pk)
    assert event.recipient_users == [carol.pk]
    assert AuditLog.objects.get(action="dns.zone.create").actor == carol


def test_the_admin_refuses_invalid_zones(admin_client):
    reply = admin_client.post("/admin/dns/zone/add/", zone_form(name="bad..name", email="x"))
    assert reply.status_code == 200  # the form again, with its errors
    assert not Zone.objects.exists()


def test_a_record_changed_in_the_admin_raises_serial_and_version(
    admin_client, carol, make_zone, make_record, django_capture_on_commit_callbacks
):
    zone = make_zone()
    record = make_record(zone, ttl=300)
    serial = refreshed(zone).serial
    form = {
        "zone": zone.pk,
        "name": "www",
        "record_type": "A",
        "value": "192.0.2.77",
        "ttl": 300,
        "priority": "",
        "weight": "",
        "port": "",
        "seen_version": record.version,
    }
    with django_capture_on_commit_callbacks(execute=True):
        reply = admin_client.post(f"/admin/dns/record/{record.pk}/change/", form)
    assert reply.status_code == 302, reply.content.decode()[:2000]
    record.refresh_from_db()
    assert (record.value, record.version) == ("192.0.2.77", 2)
    assert refreshed(zone).serial > serial
    (event,) = events("record_updated")
    assert event.data["changes"] == [
        {"field": "value", "old_value": "192.0.2.10", "new_value": "192.0.2.77"}
    ]
    assert event.data["user_id"] == str(carol.pk)
    audit = AuditLog.objects.get(action="dns.record.update")
    assert audit.actor == carol and audit.new_values == {"value": "192.0.2.77"}


def test_the_admin_applies_the_cname_rule(admin_client, make_zone, make_record):
    zone = make_zone()
    make_record(zone, name="www")
    form = {
        "zone": zone.pk,
        "name": "www",
        "record_type": "CNAME",
        "value": "web",
        "ttl": "",
        "priority": "",
        "weight": "",
        "port": "",
    }
    reply = admin_client.post("/admin/dns/record/add/", form)
    assert reply.status_code == 200 and "cannot exist beside" in reply.content.decode()
    assert Record.objects.count() == 1


def test_records_deleted_in_the_admin_are_announced(
    admin_client, make_zone, make_record, django_capture_on_commit_callbacks
):
    zone = make_zone()
    record = make_record(zone)
    with django_capture_on_commit_callbacks(execute=True):
        reply = admin_client.post(f"/admin/dns/record/{record.pk}/delete/", {"post": "yes"})
    assert reply.status_code == 302
    (event,) = events("record_deleted")
    assert event.data["record_id"] == str(record.pk)


@contextmanager
def refused():
    """Expect DirectWrite; the savepoint keeps the test's transaction usable after it."""
    with pytest.raises(DirectWrite, match="dns.services"), transaction.atomic():
        yield


def test_plain_saves_and_deletes_outside_the_services_are_refused(make_zone, make_record):
    zone = make_zone()
    record = make_record(zone)
    with refused():
        Record.objects.create(zone=zone, name="raw", record_type="A", value="192.0.2.3")
    zone.description = "edited in a shell"
    with refused():
        zone.save()
    with refused():
        RpzRule.objects.create(domain="bad.example", action="drop")
    with refused():
        Forwarder.objects.create(address="192.0.2.53")
    with refused():
        record.delete()
    with refused():
        Zone.objects.filter(pk=zone.pk).delete()
    assert refreshed(zone).description == "" and Record.objects.filter(pk=record.pk).exists()


def test_deleting_a_user_takes_their_zone_access_along(make_zone, make_user):
    zone = make_zone()
    erin = make_user("erin", role="analyst")
    grant(zone, erin)
    erin.delete()  # a cascade from an unguarded model, as the database would do
    assert not ZoneAccess.objects.filter(zone=zone).exists()


def test_a_stale_admin_zone_form_is_refused_not_silently_bumped(admin_client, make_zone, carol):
    zone = make_zone(name="stale.example")
    page = admin_client.get(f"/admin/dns/zone/{zone.pk}/change/").content.decode()
    assert 'name="seen_version" value="1"' in page
    # Someone else changes the zone after the form was loaded (through the API's service).
    services.update_zone(carol, zone.pk, {"description": "theirs"}, version=1)
    reply = admin_client.post(
        f"/admin/dns/zone/{zone.pk}/change/",
        zone_form(name="stale.example", description="mine", seen_version=1),
    )
    assert reply.status_code == 200
    assert "changed by someone else" in reply.content.decode()
    zone = refreshed(zone)
    assert (zone.description, zone.version) == ("theirs", 2)
    reply = admin_client.post(
        f"/admin/dns/zone/{zone.pk}/change/",
        zone_form(name="stale.example", description="mine", seen_version=2),
    )
    assert reply.status_code == 302
    assert (refreshed(zone).description, refreshed(zone).version) == ("mine", 3)


def test_an_admin_zone_form_without_its_version_is_refused(admin_client, make_zone):
    zone = make_zone(name="noversion.example")
    reply = admin_client.post(
        f"/admin/dns/zone/{zone.pk}/change/", zone_form(name="noversion.example", description="x")
    )
    assert reply.status_code == 200 and "changed by someone else" in reply.content.decode()
    assert refreshed(zone).description == ""


def form_errors(reply):
    return re.findall(r"errorlist[^<]*<li>[^<]*", reply.content.decode())


def audited(action):
    return list(AuditLog.objects.filter(action=action).order_by("id"))


def test_a_zone_deleted_in_the_admin_is_audited_and_announced_to_its_readers(
    admin_client, carol, alice, make_zone, django_capture_on_commit_callbacks
):
    zone = make_zone()
    grant(zone, alice)
    with django_capture_on_commit_callbacks(execute=True):
        reply = admin_client.post(f"/admin/dns/zone/{zone.pk}/delete/", {"post": "yes"})
    assert reply.status_code == 302
    assert not Zone.objects.filter(pk=zone.pk).exists()
    (event,) = events("zone_deleted")
    assert alice.pk in event.recipient_users
    assert audited("dns.zone.delete")[0].actor == carol


def test_bulk_deleting_zones_and_records_in_the_admin_goes_through_the_services(
    admin_client, carol, make_zone, make_record, django_capture_on_commit_callbacks
):
    zones = [make_zone(), make_zone()]
    kept = make_zone()
    records = [make_record(kept, name=f"host{n}") for n in range(3)]
    serial = refreshed(kept).serial
    with django_capture_on_commit_callbacks(execute=True):
        reply = admin_client.post(
            "/admin/dns/zone/",
            {
                "action": "delete_selected",
                ACTION_CHECKBOX_NAME: [z.pk for z in zones],
                "post": "yes",
            },
        )
        assert reply.status_code == 302
        reply = admin_client.post(
            "/admin/dns/record/",
            {
                "action": "delete_selected",
                ACTION_CHECKBOX_NAME: [r.pk for r in records[:2]],
                "post": "yes",
            },
        )
    assert reply.status_code == 302
    assert list(Zone.objects.all()) == [kept] and record_count(kept) == 1
    assert len(events("zone_deleted")) == 2 and len(events("record_deleted")) == 2
    assert len(audited("dns.zone.delete")) == 2 and len(audited("dns.record.delete")) == 2
    assert {row.actor for row in audited("dns.record.delete")} == {carol}
    assert refreshed(kept).serial > serial


def test_rpz_rules_added_changed_and_bulk_deleted_in_the_admin_are_announced(
    admin_client, carol, django_capture_on_commit_callbacks
):
    form = {
        "domain": "Evil.Example",
        "action": "nxdomain",
        "redirect_target": "",
        "include_subdomains": "on",
        "category": "malware",
        "source": "manual",
        "is_active": "on",
        "description": "",
    }
    with django_capture_on_commit_callbacks(execute=True):
        reply = admin_client.post("/admin/dns/rpzrule/add/", form)
        assert reply.status_code == 302, reply.content.decode()[:2000]
        rule = RpzRule.objects.get()
        reply = admin_client.post(
            f"/admin/dns/rpzrule/{rule.pk}/change/", {**form, "action": "drop"}
        )
        assert reply.status_code == 302
        other = services.create_rpz_rule(None, {"domain": "other.example"})
        reply = admin_client.post(
            "/admin/dns/rpzrule/",
            {"action": "delete_selected", ACTION_CHECKBOX_NAME: [rule.pk, other.pk], "post": "yes"},
        )
    assert reply.status_code == 302 and not RpzRule.objects.exists()
    actions = [e.data["action"] for e in events("rpz_updated")]
    assert actions == ["created", "updated", "created", "deleted", "deleted"]
    assert [row.actor for row in audited("dns.rpz.create")] == [carol, None]
    assert audited("dns.rpz.update")[0].new_values == {"action": "drop"}
    assert len(audited("dns.rpz.delete")) == 2


def test_feeds_and_forwarders_added_in_the_admin_are_audited(
    admin_client, carol, django_capture_on_commit_callbacks
):
    feed_form = {
        "name": "lab feed",
        "url": "",
        "file_path": "/tmp/lab-feed",
        "format": "domains",
        "action": "nxdomain",
        "category": "malware",
        "is_active": "on",
        "update_interval": 3600,
        "description": "",
    }
    forwarder_form = {"name": "lab", "address": "192.0.2.53", "port": 53, "domains": "[]"}
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post("/admin/dns/threatfeed/add/", feed_form).status_code == 302
        reply = admin_client.post(
            "/admin/dns/forwarder/add/", {**forwarder_form, "is_active": "on"}
        )
        assert reply.status_code == 302, reply.content.decode()[:2000]
        forwarder = Forwarder.objects.get()
        reply = admin_client.post(f"/admin/dns/forwarder/{forwarder.pk}/delete/", {"post": "yes"})
        assert reply.status_code == 302
    assert ThreatFeed.objects.get().name == "lab feed"
    assert audited("dns.feed.create")[0].actor == carol
    assert [row.actor for row in audited("dns.forwarder.create")] == [carol]
    assert [row.actor for row in audited("dns.forwarder.delete")] == [carol]
    assert events("threat_feed_updated") and len(events("config_change")) == 2


def test_zone_access_granted_and_revoked_in_the_admin_inline_is_audited(
    admin_client, carol, alice, bob, make_zone
):
    zone = make_zone(name="inline.example")
    form = zone_form(name="inline.example", email="hostmaster@example.com", seen_version=1)
    form.update(
        {
            "access-TOTAL_FORMS": 1,
            "access-0-user": alice.pk,
            "access-0-group": "",
            "access-0-can_change": "on",
            "access-0-zone": zone.pk,
        }
    )
    reply = admin_client.post(f"/admin/dns/zone/{zone.pk}/change/", form)
    assert reply.status_code == 302, __import__("re").findall(
        r"errorlist[^<]*<li>[^<]*", reply.content.decode()
    )
    access = ZoneAccess.objects.get(zone=zone)
    assert (access.user, access.can_change, access.granted_by) == (alice, True, carol)
    assert audited("dns.access.grant")[0].actor == carol
    form = zone_form(name="inline.example", email="hostmaster@example.com", seen_version=1)
    form.update(
        {
            "access-TOTAL_FORMS": 1,
            "access-INITIAL_FORMS": 1,
            "access-0-id": access.pk,
            "access-0-user": bob.pk,
            "access-0-group": "",
            "access-0-zone": zone.pk,
        }
    )
    reply = admin_client.post(f"/admin/dns/zone/{zone.pk}/change/", form)
    assert reply.status_code == 302, __import__("re").findall(
        r"errorlist[^<]*<li>[^<]*", reply.content.decode()
    )
    (access,) = ZoneAccess.objects.filter(zone=zone)
    assert (access.user, access.can_change) == (bob, False)
    assert [row.old_values["user_id"] for row in audited("dns.access.revoke")] == [alice.pk]


def test_a_staff_user_without_change_access_gets_a_refusal_not_a_change(
    make_user, make_zone, alice
):
    zone = make_zone(name="theirs.example")
    staff = make_user("sam", role="analyst", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["change_zone", "view_zone"])
    )
    grant(zone, staff)  # may read, not change
    client = Client()
    client.force_login(staff)
    reply = client.post(
        f"/admin/dns/zone/{zone.pk}/change/",
        zone_form(name="theirs.example", description="mine", seen_version=1),
        follow=True,
    )
    assert "Nothing was changed" in reply.content.decode()
    assert refreshed(zone).description == ""
    assert not audited("dns.zone.update")
