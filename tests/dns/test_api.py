"""REST API under /api/dns/: zones, records, access, RPZ, feeds, forwarders."""

import pytest
from django.contrib.auth.models import Group

from dns.models import Forwarder, Record, RpzRule, ThreatFeed, Zone, ZoneAccess
from tests.dns.helpers import grant
from threatlens.writeguard import service_writes

ZONES = "/api/dns/zones/"
RECORDS = "/api/dns/records/"


@pytest.fixture
def as_user(api_client):
    def login(user):
        api_client.force_authenticate(user)
        return api_client

    return login


def zone_body(**overrides):
    body = {"name": "corp.example", "email": "hostmaster@corp.example"}
    body.update(overrides)
    return body


# --- Zones -------------------------------------------------------------------------------------


def test_an_admin_creates_a_zone_and_gets_it_back(as_user, carol):
    reply = as_user(carol).post(ZONES, zone_body(name="Corp.Example."), format="json")
    assert reply.status_code == 201, reply.json()
    body = reply.json()
    assert body["name"] == "corp.example"
    assert body["zone_type"] == "master" and body["version"] == 1
    assert body["serial"] > 2000000000 and body["records_count"] == 0


def test_a_jwt_client_can_list_zones(api_client, token_for, carol, make_zone):
    make_zone()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(carol)}")
    assert api_client.get(ZONES).json()["count"] == 1


def test_an_analyst_may_not_create_zones(as_user, alice):
    assert as_user(alice).post(ZONES, zone_body(), format="json").status_code == 403


def test_bad_zone_input_answers_400_with_field_errors(as_user, carol):
    reply = as_user(carol).post(
        ZONES,
        zone_body(name="bad..name", email="nope", zone_type="slave", masters=["x"]),
        format="json",
    )
    assert reply.status_code == 400
    assert {"name", "email", "masters"} <= set(reply.json())
    assert not Zone.objects.exists()


def test_zone_list_shows_only_readable_zones_with_filters_and_search(as_user, alice, make_zone):
    readable = [
        make_zone(name="alpha.example"),
        make_zone(name="beta.example"),
        make_zone(name="gamma.example", zone_type="forward", forwarders=["192.0.2.1"]),
    ]
    make_zone(name="hidden.example")
    for zone in readable:
        grant(zone, alice)
    Zone.objects.filter(name="beta.example").update(is_active=False)
    client = as_user(alice)
    names = [z["name"] for z in client.get(ZONES).json()["results"]]
    assert names == ["alpha.example", "beta.example", "gamma.example"]
    assert [z["name"] for z in client.get(ZONES, {"zone_type": "forward"}).json()["results"]] == [
        "gamma.example"
    ]
    assert [z["name"] for z in client.get(ZONES, {"is_active": "false"}).json()["results"]] == [
        "beta.example"
    ]
    assert [z["name"] for z in client.get(ZONES, {"search": "alph"}).json()["results"]] == [
        "alpha.example"
    ]
    assert client.get(ZONES, {"search": "hidden"}).json()["count"] == 0


def test_a_zone_the_user_may_not_read_answers_404(as_user, bob, make_zone):
    zone = make_zone()
    assert as_user(bob).get(f"{ZONES}{zone.pk}/").status_code == 404
    assert (
        as_user(bob)
        .patch(f"{ZONES}{zone.pk}/", {"description": "x", "version": 1}, format="json")
        .status_code
        == 404
    )


def test_a_reader_without_change_access_gets_403(as_user, bob, make_zone):
    zone = make_zone()
    grant(zone, bob)
    reply = as_user(bob).patch(
        f"{ZONES}{zone.pk}/", {"description": "x", "version": 1}, format="json"
    )
    assert reply.status_code == 403


def test_zone_update_needs_the_version_it_was_read_at(as_user, carol, make_zone):
    zone = make_zone()
    client = as_user(carol)
    missing = client.patch(f"{ZONES}{zone.pk}/", {"description": "x"}, format="json")
    assert missing.status_code == 400 and "version" in missing.json()
    ok = client.patch(f"{ZONES}{zone.pk}/", {"description": "first", "version": 1}, format="json")
    assert ok.status_code == 200 and ok.json()["version"] == 2


def test_a_stale_zone_edit_answers_409_with_the_current_zone(as_user, carol, make_zone):
    zone = make_zone()
    client = as_user(carol)
    client.patch(f"{ZONES}{zone.pk}/", {"description": "first", "version": 1}, format="json")
    reply = client.patch(
        f"{ZONES}{zone.pk}/", {"description": "second", "version": 1}, format="json"
    )
    assert reply.status_code == 409
    body = reply.json()
    assert body["error_code"] == "CONFLICT"
    assert body["current"]["description"] == "first" and body["current"]["version"] == 2
    assert Zone.objects.get(pk=zone.pk).description == "first"


def test_deleting_a_zone_with_a_stale_version_answers_409(as_user, carol, make_zone):
    zone = make_zone()
    client = as_user(carol)
    client.patch(f"{ZONES}{zone.pk}/", {"description": "x", "version": 1}, format="json")
    assert client.delete(f"{ZONES}{zone.pk}/?version=1").status_code == 409
    assert client.delete(f"{ZONES}{zone.pk}/?version=2").status_code == 204
    assert not Zone.objects.exists()


# --- Records -------------------------------------------------------------------------------------


def test_records_are_created_nested_and_flat(as_user, alice, make_zone):
    zone = make_zone()
    grant(zone, alice, can_change=True)
    client = as_user(alice)
    nested = client.post(
        f"{ZONES}{zone.pk}/records/",
        {"name": "www", "record_type": "A", "value": "192.0.2.1"},
        format="json",
    )
    assert nested.status_code == 201, nested.json()
    assert nested.json()["fqdn"] == f"www.{zone.name}"
    flat = client.post(
        RECORDS,
        {"zone": zone.pk, "name": "@", "record_type": "MX", "value": "mail", "priority": 10},
        format="json",
    )
    assert flat.status_code == 201, flat.json()
    assert Record.objects.filter(zone=zone).count() == 2


def test_record_validation_errors_answer_400_with_field_errors(
    as_user, carol, make_zone, make_record
):
    zone = make_zone()
    make_record(zone, name="www")
    client = as_user(carol)
    bad = client.post(
        f"{ZONES}{zone.pk}/records/",
        {"name": "x", "record_type": "A", "value": "300.1.1.1", "ttl": -1},
        format="json",
    )
    assert bad.status_code == 400
    assert set(bad.json()) >= {"value", "ttl"}
    cname = client.post(
        f"{ZONES}{zone.pk}/records/",
        {"name": "www", "record_type": "CNAME", "value": "web"},
        format="json",
    )
    assert cname.status_code == 400 and "cannot exist beside" in cname.json()["name"][0]


def test_records_of_an_unwritable_zone_cannot_be_created_flat(as_user, alice, make_zone):
    zone = make_zone()
    grant(zone, alice)  # read only
    reply = as_user(alice).post(
        RECORDS,
        {"zone": zone.pk, "name": "a", "record_type": "A", "value": "192.0.2.1"},
        format="json",
    )
    assert reply.status_code == 400 and "zone" in reply.json()


def test_record_filters_and_search(as_user, carol, make_zone, make_record):
    zone, other = make_zone(), make_zone()
    make_record(zone, name="www", record_type="A", value="192.0.2.1")
    make_record(zone, name="www", record_type="AAAA", value="2001:db8::1")
    make_record(zone, name="api", record_type="TXT", value="hello world")
    make_record(other, name="www", record_type="A", value="192.0.2.9")
    client = as_user(carol)

    def names(params, url=RECORDS):
        return sorted(
            (r["name"], r["record_type"]) for r in client.get(url, params).json()["results"]
        )

    assert names({"zone": zone.pk, "record_type": "A"}) == [("www", "A")]
    assert names({"name": "WWW", "zone": zone.pk}) == [("www", "A"), ("www", "AAAA")]
    assert names({"search": "hello"}) == [("api", "TXT")]
    assert len(names({}, url=f"{ZONES}{other.pk}/records/")) == 1


def test_a_stale_record_edit_answers_409_with_the_current_record(
    as_user, carol, make_zone, make_record
):
    zone = make_zone()
    record = make_record(zone)
    client = as_user(carol)
    url = f"{ZONES}{zone.pk}/records/{record.pk}/"
    assert client.patch(url, {"ttl": 60, "version": 1}, format="json").status_code == 200
    reply = client.patch(url, {"ttl": 120, "version": 1}, format="json")
    assert reply.status_code == 409
    assert reply.json()["current"]["ttl"] == 60 and reply.json()["current"]["version"] == 2


def test_records_of_unreadable_zones_are_invisible(as_user, bob, make_zone, make_record):
    record = make_record(make_zone())
    client = as_user(bob)
    assert client.get(RECORDS).json()["count"] == 0
    assert client.get(f"{RECORDS}{record.pk}/").status_code == 404
    assert client.get(f"{ZONES}{record.zone_id}/records/").status_code == 404


def test_records_can_be_deleted(as_user, carol, make_zone, make_record):
    record = make_record(make_zone())
    assert as_user(carol).delete(f"{RECORDS}{record.pk}/").status_code == 204
    assert not Record.objects.exists()


# --- Query counts --------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [3, 12])
def test_zone_list_query_count_does_not_grow_with_zones(
    as_user, alice, make_zone, make_record, count, django_assert_num_queries
):
    for _ in range(count):
        zone = make_zone()
        grant(zone, alice)
        make_record(zone)
    client = as_user(alice)
    # user perms, group perms, count, page
    with django_assert_num_queries(4):
        assert client.get(ZONES).json()["count"] == count


@pytest.mark.parametrize("count", [3, 12])
def test_record_list_query_count_does_not_grow_with_records(
    as_user, alice, make_zone, make_record, count, django_assert_num_queries
):
    zone = make_zone()
    grant(zone, alice)
    for n in range(count):
        make_record(zone, name=f"host{n}")
    client = as_user(alice)
    with django_assert_num_queries(4):
        assert client.get(RECORDS).json()["count"] == count
    # nested: the zone lookup and the records, sorted naturally in memory (permissions
    # are cached on the user by now)
    with django_assert_num_queries(2):
        assert client.get(f"{ZONES}{zone.pk}/records/").json()["count"] == count


def test_a_zones_records_come_in_natural_order_across_pages(as_user, carol, make_zone, make_record):
    zone = make_zone()
    for name in ["host10", "host2", "Host3", "host1", "db", "@"]:
        make_record(zone, name=name)
    client = as_user(carol)
    names = []
    url = f"{ZONES}{zone.pk}/records/?page_size=4"
    while url:
        page = client.get(url).json()
        names += [record["name"] for record in page["results"]]
        url = page["next"]
    assert names == ["@", "db", "host1", "host2", "host3", "host10"]  # names are lower-cased
    flat = client.get(RECORDS, {"ordering": "natural", "zone": zone.pk}).json()
    assert [record["name"] for record in flat["results"]] == names
    # Another ordering named explicitly is the database's.
    by_name = client.get(f"{ZONES}{zone.pk}/records/", {"ordering": "-name"}).json()
    assert [r["name"] for r in by_name["results"]][0] == "host3"


def test_records_are_searched_by_name_value_and_type(as_user, carol, make_zone, make_record):
    zone = make_zone()
    make_record(zone, name="web1", value="192.0.2.10")
    make_record(zone, name="web2", value="192.0.2.20")
    make_record(zone, name="mail", record_type="A", value="198.51.100.25")
    make_record(zone, name="www", record_type="CNAME", value="web1")
    client = as_user(carol)
    url = f"{ZONES}{zone.pk}/records/"

    def names(**params):
        return [r["name"] for r in client.get(url, params).json()["results"]]

    assert names(search="WEB") == ["web1", "web2", "www"]  # name or value, any case
    assert names(search="198.51.100") == ["mail"]
    assert names(search="web", record_type="CNAME") == ["www"]
    assert names(search="nothing-like-this") == []


# --- Access --------------------------------------------------------------------------------------


def test_admins_grant_and_revoke_zone_access(as_user, carol, alice, make_zone):
    zone = make_zone()
    url = f"{ZONES}{zone.pk}/access/"
    client = as_user(carol)
    reply = client.post(url, {"username": "alice", "can_change": True}, format="json")
    assert reply.status_code == 201, reply.json()
    assert list(Zone.objects.for_user(alice, change=True)) == [zone]
    group = client.post(url, {"group_name": "viewer"}, format="json")
    assert group.status_code == 201
    listed = client.get(url).json()["results"]
    assert {(row["username"], row["group_name"]) for row in listed} == {
        ("alice", None),
        (None, "viewer"),
    }
    access_id = reply.json()["id"]
    assert client.delete(f"{url}{access_id}/").status_code == 204
    assert list(Zone.objects.for_user(alice)) == []
    assert ZoneAccess.objects.filter(zone=zone, group=Group.objects.get(name="viewer")).exists()


def test_non_admins_cannot_manage_access(as_user, alice, make_zone):
    zone = make_zone()
    grant(zone, alice, can_change=True)
    client = as_user(alice)
    assert client.get(f"{ZONES}{zone.pk}/access/").status_code == 403
    assert (
        client.post(f"{ZONES}{zone.pk}/access/", {"username": "alice"}, format="json").status_code
        == 403
    )


def test_granting_needs_exactly_one_user_or_group(as_user, carol, make_zone):
    zone = make_zone()
    reply = as_user(carol).post(f"{ZONES}{zone.pk}/access/", {"can_change": True}, format="json")
    assert reply.status_code == 400


# --- RPZ, feeds, forwarders -------------------------------------------------------------------


def test_rpz_rules_are_managed_by_admins_and_read_by_viewers(as_user, carol, bob):
    client = as_user(carol)
    reply = client.post(
        "/api/dns/rpz/rules/",
        {"domain": "Evil.Example.", "action": "nxdomain", "category": "malware"},
        format="json",
    )
    assert reply.status_code == 201, reply.json()
    assert reply.json()["domain"] == "evil.example" and reply.json()["source"] == "manual"
    dup = client.post("/api/dns/rpz/rules/", {"domain": "evil.example"}, format="json")
    assert dup.status_code == 400
    redirect = client.post(
        "/api/dns/rpz/rules/", {"domain": "ads.example", "action": "redirect"}, format="json"
    )
    assert redirect.status_code == 400 and "redirect_target" in redirect.json()
    viewer = as_user(bob)
    assert viewer.get("/api/dns/rpz/rules/").json()["count"] == 1
    assert (
        viewer.post("/api/dns/rpz/rules/", {"domain": "x.example"}, format="json").status_code
        == 403
    )
    assert RpzRule.objects.count() == 1


def test_forwarders_and_feeds_can_be_created_and_listed(as_user, carol):
    client = as_user(carol)
    forwarder = client.post(
        "/api/dns/forwarders/",
        {"address": "192.0.2.53", "port": 53, "domains": ["Corp.Example."]},
        format="json",
    )
    assert forwarder.status_code == 201, forwarder.json()
    assert forwarder.json()["domains"] == ["corp.example"]
    assert forwarder.json()["health_status"] == "unknown"
    feed = client.post(
        "/api/dns/feeds/",
        {"name": "abuse", "url": "https://feeds.example/list", "format": "hosts"},
        format="json",
    )
    assert feed.status_code == 201, feed.json()
    nofile = client.post("/api/dns/feeds/", {"name": "nothing"}, format="json")
    assert nofile.status_code == 400
    assert client.get("/api/dns/feeds/").json()["count"] == 1
    pk = forwarder.json()["id"]
    patched = client.patch(f"/api/dns/forwarders/{pk}/", {"port": 5353}, format="json")
    assert patched.status_code == 200 and Forwarder.objects.get(pk=pk).port == 5353
    assert (
        client.patch(f"/api/dns/forwarders/{pk}/", {"port": 70000}, format="json").status_code
        == 400
    )


@pytest.mark.parametrize("count", [2, 10])
def test_rpz_rule_list_query_count_does_not_grow_with_rules(
    as_user, carol, count, django_assert_num_queries
):
    from dns.models import ThreatFeed

    with service_writes():
        feed = ThreatFeed.objects.create(name="feed", file_path="/tmp/feed")
    RpzRule.objects.bulk_create(
        [RpzRule(domain=f"bad{n}.example", feed=feed, source="feed") for n in range(count)]
    )
    client = as_user(carol)
    # user perms, group perms, count, page (feeds joined)
    with django_assert_num_queries(4):
        assert client.get("/api/dns/rpz/rules/").json()["count"] == count


def test_zone_responses_say_whether_the_requesting_user_may_change_the_zone(
    as_user, alice, bob, carol, make_zone
):
    zone = make_zone(name="perm.example")
    grant(zone, alice, can_change=True)
    grant(zone, bob)
    for user, expected in [(alice, True), (bob, False), (carol, True)]:
        client = as_user(user)
        assert client.get(f"/api/dns/zones/{zone.pk}/").json()["can_change"] is expected
        listed = client.get("/api/dns/zones/").json()["results"]
        assert [z["can_change"] for z in listed] == [expected]


def test_a_feeds_download_interval_is_set_over_rest_and_bounded(as_user, carol):
    client = as_user(carol)
    created = client.post(
        "/api/dns/feeds/",
        {"name": "hourly", "url": "https://feeds.example/list", "update_interval": 3600},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["update_interval"] == 3600 and created.json()["last_fetch"] is None
    too_often = client.patch(
        f"/api/dns/feeds/{created.json()['id']}/", {"update_interval": 5}, format="json"
    )
    assert too_often.status_code == 400 and "error_code" in too_often.json()
    assert "update_interval" in too_often.json()
    assert ThreatFeed.objects.get(name="hourly").update_interval == 3600
