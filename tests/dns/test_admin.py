"""Every write path broadcasts: Django admin forms and plain save()/delete() calls."""

import pytest
from django.test import Client

from dns import services
from dns.models import Forwarder, Record, RpzRule, Zone
from threatlens.audit.models import AuditLog

from .conftest import events, refreshed


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


def test_plain_saves_outside_services_still_publish(make_zone, django_capture_on_commit_callbacks):
    zone = make_zone()
    with django_capture_on_commit_callbacks(execute=True):
        record = Record.objects.create(zone=zone, name="raw", record_type="A", value="192.0.2.3")
        zone.description = "edited in a shell"
        zone.save()
        rule = RpzRule.objects.create(domain="bad.example", action="drop")
        Forwarder.objects.create(address="192.0.2.53")
        rule.delete()
    kinds = [e.event_type for e in events()]
    assert kinds.count("record_created") == 1 and kinds.count("zone_updated") == 1
    assert kinds.count("rpz_updated") == 2 and "config_change" in kinds
    zone = refreshed(zone)
    assert zone.version == 2
    assert events("record_created")[0].data["record_id"] == str(record.pk)


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
