"""Zone and record services: access, serials, versions, the CNAME rule, audit and events."""

from datetime import date

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError

from dns import services
from dns.models import Record, Zone, ZoneAccess
from tests.dns.helpers import events, grant, refreshed
from threatlens.audit.models import AuditLog

# --- Visibility: for_user ---------------------------------------------------------------------


def test_users_see_only_zones_they_or_their_groups_have_access_to(make_zone, alice, bob, dave):
    mine, shared, hidden = make_zone(), make_zone(), make_zone()
    grant(mine, alice)
    grant(shared, Group.objects.get(name="viewer"))
    assert set(Zone.objects.for_user(alice)) == {mine}
    assert set(Zone.objects.for_user(bob)) == {shared}
    assert list(Zone.objects.for_user(dave)) == []
    assert hidden not in Zone.objects.for_user(alice)


def test_admins_see_and_change_every_zone(make_zone, carol):
    zones = {make_zone(), make_zone()}
    assert set(Zone.objects.for_user(carol)) == zones
    assert set(Zone.objects.for_user(carol, change=True)) == zones


def test_read_access_does_not_allow_changes(make_zone, alice):
    zone = make_zone()
    grant(zone, alice)
    assert list(Zone.objects.for_user(alice, change=True)) == []
    with pytest.raises(PermissionDenied):
        services.create_record(
            alice, zone.pk, {"name": "a", "record_type": "A", "value": "192.0.2.1"}
        )


def test_records_follow_the_visibility_of_their_zone(make_zone, make_record, alice, bob):
    visible, hidden = make_zone(), make_zone()
    grant(visible, alice, can_change=True)
    mine = make_record(visible)
    make_record(hidden)
    assert list(Record.objects.for_user(alice)) == [mine]
    assert list(Record.objects.for_user(alice, change=True)) == [mine]
    assert list(Record.objects.for_user(bob)) == []


def test_inactive_and_anonymous_users_see_nothing(make_zone, alice):
    from django.contrib.auth.models import AnonymousUser

    grant(make_zone(), alice)
    alice.is_active = False
    assert list(Zone.objects.for_user(alice)) == []
    assert list(Zone.objects.for_user(AnonymousUser())) == []


def test_a_zone_nobody_may_read_looks_like_no_zone_at_all(make_zone, alice):
    zone = make_zone()
    with pytest.raises(Zone.DoesNotExist):
        services.update_zone(alice, zone.pk, {"description": "x"}, version=1)


# --- Creating zones ---------------------------------------------------------------------------


def test_the_creator_of_a_zone_may_read_and_change_it(carol, make_user):
    creator = make_user("erin", role="analyst")
    creator.user_permissions.add(*_perms("add_zone"))
    zone = services.create_zone(creator, {"name": "Erin.Example.", "email": "erin@example.com"})
    assert zone.name == "erin.example"
    assert ZoneAccess.objects.get(zone=zone).user == creator
    assert list(Zone.objects.for_user(creator, change=True)) == [zone]


def test_analysts_may_not_create_zones(alice):
    with pytest.raises(PermissionDenied):
        services.create_zone(alice, {"name": "a.example", "email": "a@example.com"})


def test_zone_names_are_unique_after_normalising(make_zone, carol):
    make_zone(name="dup.example")
    with pytest.raises(ValidationError) as caught:
        services.create_zone(carol, {"name": "DUP.example.", "email": "h@example.com"})
    assert "already exists" in caught.value.message_dict["name"][0]


def test_bad_zone_input_changes_nothing(carol):
    with pytest.raises(ValidationError) as caught:
        services.create_zone(carol, {"name": "bad_ zone", "email": "nope"})
    assert set(caught.value.message_dict) == {"name", "email"}
    assert not Zone.objects.exists()
    assert not AuditLog.objects.filter(action__startswith="dns.").exists()


# --- Serial ------------------------------------------------------------------------------------


def test_every_zone_or_record_change_raises_the_serial(make_zone, carol):
    zone = make_zone()
    serials = [zone.serial]
    record = services.create_record(
        carol, zone.pk, {"name": "a", "record_type": "A", "value": "192.0.2.1"}
    )
    serials.append(refreshed(zone).serial)
    services.update_record(carol, record.pk, {"value": "192.0.2.2"}, version=record.version)
    serials.append(refreshed(zone).serial)
    services.update_zone(carol, zone.pk, {"description": "x"}, version=zone.version)
    serials.append(refreshed(zone).serial)
    services.delete_record(carol, record.pk)
    serials.append(refreshed(zone).serial)
    assert serials == sorted(set(serials)), serials


def test_the_serial_keeps_rising_past_99_changes_in_one_day(make_zone, carol, monkeypatch):
    monkeypatch.setattr(services, "today", lambda: date(2025, 6, 1))
    zone = make_zone()
    assert zone.serial == 2025060100
    record = services.create_record(
        carol, zone.pk, {"name": "a", "record_type": "A", "value": "192.0.2.1"}
    )
    serials = []
    for n in range(120):
        record = services.update_record(carol, record.pk, {"ttl": 60 + n}, version=None)
        serials.append(refreshed(zone).serial)
    assert serials == sorted(set(serials))
    assert serials[-1] == 2025060100 + 121
    monkeypatch.setattr(services, "today", lambda: date(2025, 6, 2))
    services.update_record(carol, record.pk, {"ttl": 1}, version=None)
    assert refreshed(zone).serial == serials[-1] + 1  # the next day never goes back


def test_a_change_that_changes_nothing_leaves_the_serial_alone(make_zone, make_record, carol):
    zone = make_zone()
    record = make_record(zone)
    serial = refreshed(zone).serial
    services.update_record(carol, record.pk, {"value": "192.0.2.10"}, version=record.version)
    assert refreshed(zone).serial == serial


# --- Versions --------------------------------------------------------------------------------


def test_a_stale_zone_update_is_refused_with_the_current_state(make_zone, carol):
    zone = make_zone()
    services.update_zone(carol, zone.pk, {"description": "first"}, version=1)
    with pytest.raises(services.StaleVersion) as caught:
        services.update_zone(carol, zone.pk, {"description": "second"}, version=1)
    assert caught.value.current.description == "first"
    assert caught.value.current.version == 2
    assert refreshed(zone).description == "first"


def test_a_stale_record_update_is_refused(make_zone, make_record, carol):
    record = make_record(make_zone())
    services.update_record(carol, record.pk, {"ttl": 60}, version=1)
    with pytest.raises(services.StaleVersion):
        services.update_record(carol, record.pk, {"ttl": 120}, version=1)
    with pytest.raises(services.StaleVersion):
        services.delete_record(carol, record.pk, version=1)
    assert Record.objects.get(pk=record.pk).ttl == 60


def test_record_changes_do_not_make_a_zone_edit_stale(make_zone, make_record, carol):
    zone = make_zone()
    make_record(zone, name="x")
    services.update_zone(carol, zone.pk, {"description": "ok"}, version=zone.version)


# --- The CNAME rule through the service -------------------------------------------------------


def test_cname_refused_beside_an_existing_record_and_the_reverse(make_zone, make_record, carol):
    zone = make_zone()
    make_record(zone, name="www", record_type="A", value="192.0.2.1")
    with pytest.raises(ValidationError) as caught:
        services.create_record(
            carol, zone.pk, {"name": "www", "record_type": "CNAME", "value": "web"}
        )
    assert "cannot exist beside" in caught.value.message_dict["name"][0]
    make_record(zone, name="alias", record_type="CNAME", value="web")
    with pytest.raises(ValidationError) as caught:
        services.create_record(
            carol, zone.pk, {"name": "alias", "record_type": "TXT", "value": "x"}
        )
    assert "is a CNAME" in caught.value.message_dict["name"][0]


def test_renaming_a_record_onto_a_cname_is_refused(make_zone, make_record, carol):
    zone = make_zone()
    make_record(zone, name="alias", record_type="CNAME", value="web")
    other = make_record(zone, name="other", record_type="A", value="192.0.2.1")
    with pytest.raises(ValidationError):
        services.update_record(carol, other.pk, {"name": "alias"}, version=other.version)


def test_records_go_only_into_master_zones(make_zone, carol):
    zone = make_zone(zone_type="slave", masters=["192.0.2.53"])
    with pytest.raises(ValidationError) as caught:
        services.create_record(
            carol, zone.pk, {"name": "a", "record_type": "A", "value": "192.0.2.1"}
        )
    assert "master" in caught.value.message_dict["zone"][0]


# --- Audit and events -------------------------------------------------------------------------


def test_zone_creation_is_audited_and_announced_to_its_readers(
    carol, make_user, django_capture_on_commit_callbacks
):
    creator = make_user("erin", role="analyst")
    creator.user_permissions.add(*_perms("add_zone"))
    with django_capture_on_commit_callbacks(execute=True):
        zone = services.create_zone(creator, {"name": "new.example", "email": "h@example.com"})
    created = events("zone_created")
    assert len(created) == 1
    data = created[0].data
    assert data["zone_id"] == str(zone.pk) and data["zone_name"] == "new.example"
    assert data["action"] == "created" and data["user_id"] == str(creator.pk)
    assert data["source"] == "dns" and data["category"] == "zone"
    assert {"field": "name", "old_value": None, "new_value": "new.example"} in data["changes"]
    assert data["zone"]["name"] == "new.example"  # the REST representation
    assert created[0].recipient_users == [creator.pk]
    assert created[0].recipient_groups == []
    config = events("config_change")
    assert config[0].data["zone_name"] == "new.example"
    assert config[0].data["action"] == "zone_created"
    assert config[0].recipient_users is None  # system family: everyone with receive_system
    row = AuditLog.objects.get(action="dns.zone.create")
    assert row.actor == creator and row.new_values["name"] == "new.example"


def test_zone_update_event_lists_old_and_new_values(
    make_zone, carol, alice, django_capture_on_commit_callbacks
):
    zone = make_zone()
    grant(zone, alice)
    group = Group.objects.get(name="viewer")
    grant(zone, group)
    with django_capture_on_commit_callbacks(execute=True):
        services.update_zone(
            carol, zone.pk, {"refresh": 7200, "description": "hello"}, version=zone.version
        )
    (event,) = events("zone_updated")
    changes = {c["field"]: (c["old_value"], c["new_value"]) for c in event.data["changes"]}
    assert changes["refresh"] == (3600, 7200)
    assert changes["description"] == ("", "hello")
    assert changes["serial"][1] > changes["serial"][0]
    assert event.recipient_users == [alice.pk]
    assert event.recipient_groups == [group.pk]
    row = AuditLog.objects.get(action="dns.zone.update")
    assert row.old_values["refresh"] == 3600 and row.new_values["refresh"] == 7200


def test_record_events_reach_only_the_zones_readers(
    make_zone, carol, alice, bob, django_capture_on_commit_callbacks
):
    zone = make_zone()
    grant(zone, alice, can_change=True)
    with django_capture_on_commit_callbacks(execute=True):
        record = services.create_record(
            alice, zone.pk, {"name": "mail", "record_type": "MX", "value": "mx1", "priority": 10}
        )
    (event,) = events("record_created")
    assert event.recipient_users == [alice.pk]
    assert bob.pk not in event.recipient_users
    data = event.data
    assert data["record_id"] == str(record.pk)
    assert data["record_name"] == f"mail.{zone.name}"
    assert data["record_type"] == "MX" and data["record_value"] == "mx1"
    assert data["record"]["priority"] == 10
    assert data["zone_name"] == zone.name and data["category"] == "record"
    (config,) = events("config_change")
    assert "mx1" not in str(config.data)  # no record values for everyone
    assert config.data["action"] == "record_created"


def test_deleting_a_zone_tells_those_who_could_read_it(
    make_zone, make_record, carol, alice, django_capture_on_commit_callbacks
):
    zone = make_zone()
    make_record(zone)
    grant(zone, alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_zone(carol, zone.pk)
    (event,) = events("zone_deleted")
    assert event.recipient_users == [alice.pk]
    assert event.data["zone_name"] == zone.name
    assert events("record_deleted") == []  # the zone's deletion speaks for its records
    assert not Zone.objects.filter(pk=zone.pk).exists()


def test_record_update_and_delete_are_audited_with_old_and_new_values(
    make_zone, make_record, carol, django_capture_on_commit_callbacks
):
    zone = make_zone()
    record = make_record(zone, ttl=300)
    with django_capture_on_commit_callbacks(execute=True):
        services.update_record(carol, record.pk, {"ttl": 600}, version=1)
        services.delete_record(carol, record.pk)
    update = AuditLog.objects.get(action="dns.record.update")
    assert (update.old_values, update.new_values) == ({"ttl": 300}, {"ttl": 600})
    delete = AuditLog.objects.get(action="dns.record.delete")
    assert delete.old_values["value"] == "192.0.2.10" and delete.new_values is None
    assert [e.data["action"] for e in events() if e.event_type.startswith("record_")] == [
        "updated",
        "deleted",
    ]


def test_nothing_is_published_when_the_transaction_rolls_back(
    make_zone, carol, django_capture_on_commit_callbacks
):
    from django.db import transaction

    zone = make_zone()
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.create_record(
            carol, zone.pk, {"name": "a", "record_type": "A", "value": "192.0.2.1"}
        )
        raise RuntimeError("boom")
    assert events() == []
    assert not Record.objects.exists()


def _perms(*codenames):
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(content_type__app_label="dns", codename__in=codenames)


@pytest.mark.parametrize("role", ["analyst", "viewer"])
def test_roles_other_than_admin_do_not_see_every_zone(db, role):
    from django.contrib.auth.models import Group

    codenames = set(Group.objects.get(name=role).permissions.values_list("codename", flat=True))
    assert not codenames & {"view_all_zones", "change_all_zones"}
