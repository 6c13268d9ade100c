"""Zone file export (checked by named-checkzone when installed) and import."""

import shutil
import subprocess
import textwrap

import pytest

from dns import zonefile
from dns.models import Record, RpzRule, ThreatFeed, Zone
from tests.dns.helpers import events, grant
from threatlens.audit.models import AuditLog
from threatlens.writeguard import service_writes

NAMED_CHECKZONE = shutil.which("named-checkzone")
needs_checkzone = pytest.mark.skipif(
    NAMED_CHECKZONE is None,
    reason="named-checkzone is not installed (Debian package bind9-utils; CI installs it)",
)

REAL_ZONE = textwrap.dedent(
    """\
    ; Zone file for corp.example, as a BIND admin would write it
    $ORIGIN corp.example.
    $TTL 4h
    @       IN  SOA ns1.corp.example. dns\\.admin.corp.example. (
                    2024031502 ; serial
                    3h         ; refresh
                    15m        ; retry
                    2w         ; expire
                    1h )       ; negative caching TTL
            IN  NS  ns1
            IN  NS  ns2.provider.net.
            IN  MX  10 mail
            IN  MX  20 mail.backup.net.
            IN  TXT "v=spf1 mx include:_spf.provider.net -all"
    ns1     IN  A     192.0.2.1
    mail    IN  A     192.0.2.25
            IN  AAAA  2001:db8::25
    www  300 IN CNAME @
    @       IN  A     192.0.2.80
    _sip._tcp   86400 IN SRV 10 60 5060 sip
    sip     IN  A     192.0.2.60
    *.dev   IN  A     192.0.2.90
    dkim._domainkey IN TXT ( "v=DKIM1; k=rsa; "
                             "p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" )
    $ORIGIN lab.corp.example.
    printer IN  A     192.0.2.200
    ; duplicates are ignored, as BIND does
    printer IN  A     192.0.2.200
    """
)


@pytest.fixture
def as_user(api_client):
    def login(user):
        api_client.force_authenticate(user)
        return api_client

    return login


def named_checkzone(zone_name, text, tmp_path):
    path = tmp_path / f"db.{zone_name}"
    path.write_text(text)
    result = subprocess.run(
        [
            NAMED_CHECKZONE,
            "-k",
            "fail",
            "-n",
            "fail",
            "-m",
            "fail",
            "-M",
            "fail",
            "-S",
            "fail",
            zone_name,
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.returncode, result.stdout + result.stderr


def full_zone(make_zone, make_record):
    zone = make_zone(
        name="shop.example", primary_ns="ns1.shop.example", email="ops.team@shop.example"
    )
    make_record(zone, name="ns1", record_type="A", value="192.0.2.1")
    make_record(zone, name="@", record_type="NS", value="ns2.hosting.net.")
    make_record(zone, name="@", record_type="A", value="192.0.2.10")
    make_record(zone, name="@", record_type="MX", value="mail", priority=10)
    make_record(zone, name="mail", record_type="A", value="192.0.2.25", ttl=300)
    make_record(zone, name="mail", record_type="AAAA", value="2001:db8::25")
    make_record(zone, name="www", record_type="CNAME", value="@")
    make_record(zone, name="*.cdn", record_type="A", value="192.0.2.99")
    make_record(
        zone,
        name="_xmpp._tcp",
        record_type="SRV",
        value="chat.hosting.net.",
        priority=5,
        weight=0,
        port=5222,
    )
    make_record(zone, name="@", record_type="TXT", value="v=spf1 mx -all")
    make_record(zone, name="long", record_type="TXT", value="k=" + "x" * 600)
    make_record(zone, name="quote", record_type="TXT", value='say "hi" \\ back; café')
    make_record(zone, name="10", record_type="PTR", value="host.hosting.net.")
    return Zone.objects.get(pk=zone.pk)


def test_export_writes_origin_ttl_soa_ns_and_records(as_user, carol, make_zone, make_record):
    zone = full_zone(make_zone, make_record)
    reply = as_user(carol).get(f"/api/dns/zones/{zone.pk}/export/")
    assert reply.status_code == 200
    assert reply["Content-Type"].startswith("text/plain")
    text = reply.content.decode()
    assert "$ORIGIN shop.example.\n" in text
    assert "$TTL 3600\n" in text
    assert "SOA\tns1.shop.example. ops\\.team.shop.example. (" in text
    assert f"{zone.serial}\t; serial" in text
    assert "@\tIN\tNS\tns1.shop.example." in text
    assert "\tMX\t10 mail" in text
    assert "\tSRV\t5 0 5222 chat.hosting.net." in text
    long_line = next(line for line in text.splitlines() if line.startswith("long"))
    assert long_line.count('"') == 6  # three quoted strings of at most 255 bytes
    assert '"say \\"hi\\" \\\\ back; caf\\195\\169"' in text


@needs_checkzone
def test_exported_zone_passes_named_checkzone(as_user, carol, make_zone, make_record, tmp_path):
    zone = full_zone(make_zone, make_record)
    text = as_user(carol).get(f"/api/dns/zones/{zone.pk}/export/").content.decode()
    code, output = named_checkzone(zone.name, text, tmp_path)
    assert code == 0, output + text
    assert f"loaded serial {zone.serial}" in output


@needs_checkzone
def test_a_zone_with_only_its_soa_passes_named_checkzone_when_its_ns_is_outside(
    make_zone, tmp_path
):
    zone = make_zone(name="tiny.example", primary_ns="ns.provider.net")
    code, output = named_checkzone(zone.name, zonefile.render_zone(zone, []), tmp_path)
    assert code == 0, output


def test_only_master_zones_export(as_user, carol, make_zone):
    zone = make_zone(zone_type="slave", masters=["192.0.2.53"])
    assert as_user(carol).get(f"/api/dns/zones/{zone.pk}/export/").status_code == 400


def test_export_needs_read_access(as_user, bob, make_zone):
    zone = make_zone()
    assert as_user(bob).get(f"/api/dns/zones/{zone.pk}/export/").status_code == 404
    grant(zone, bob)
    assert as_user(bob).get(f"/api/dns/zones/{zone.pk}/export/").status_code == 200


# --- Import -----------------------------------------------------------------------------------


def test_importing_a_real_looking_zone_file_creates_the_zone_and_its_records(
    as_user, carol, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        reply = as_user(carol).post(
            "/api/dns/zones/import/", {"zone_file": REAL_ZONE}, format="json"
        )
    assert reply.status_code == 201, reply.json()
    zone = Zone.objects.get(name="corp.example")
    assert (zone.primary_ns, zone.email) == ("ns1.corp.example", "dns.admin@corp.example")
    assert (zone.refresh, zone.retry, zone.expire, zone.minimum, zone.default_ttl) == (
        10800,
        900,
        1209600,
        3600,
        14400,
    )
    assert zone.serial >= 2024031502
    rows = {
        (r.name, r.record_type, r.value, r.ttl, r.priority, r.weight, r.port)
        for r in zone.records.all()
    }
    assert ("@", "NS", "ns2.provider.net.", None, None, None, None) in rows
    assert ("@", "MX", "mail", None, 10, None, None) in rows
    assert ("@", "MX", "mail.backup.net.", None, 20, None, None) in rows
    assert ("www", "CNAME", "@", 300, None, None, None) in rows
    assert ("_sip._tcp", "SRV", "sip", 86400, 10, 60, 5060) in rows
    assert ("*.dev", "A", "192.0.2.90", None, None, None, None) in rows
    assert ("printer.lab", "A", "192.0.2.200", None, None, None, None) in rows
    assert ("mail", "AAAA", "2001:db8::25", None, None, None, None) in rows
    dkim = zone.records.get(name="dkim._domainkey")
    assert dkim.value == '"v=DKIM1; k=rsa; " "p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"'
    # The apex NS of the SOA's primary is not a record (the SOA fields write it).
    assert not zone.records.filter(name="@", record_type="NS", value="ns1").exists()
    assert zone.records.count() == 14
    assert reply.json()["import"]["added"] == 14
    assert [e.event_type for e in events() if e.event_type.startswith("zone_")] == ["zone_created"]
    assert AuditLog.objects.filter(action="dns.zone.import").exists()


@needs_checkzone
def test_an_imported_zone_exports_to_a_file_named_checkzone_accepts(as_user, carol, tmp_path):
    client = as_user(carol)
    zone_id = client.post("/api/dns/zones/import/", {"zone_file": REAL_ZONE}, format="json").json()[
        "zone"
    ]["id"]
    text = client.get(f"/api/dns/zones/{zone_id}/export/").content.decode()
    code, output = named_checkzone("corp.example", text, tmp_path)
    assert code == 0, output + text
    assert zonefile.parse_zone_file(text).records  # and it reads back


def test_import_errors_name_their_lines_and_change_nothing(as_user, carol):
    text = textwrap.dedent(
        """\
        $ORIGIN broken.example.
        $TTL 1h
        @    IN SOA ns1 hostmaster ( 1 2 3 4 5 )
        ns1  IN A 192.0.2.1
        www  IN A 999.1.1.1
        www  IN CNAME other
        mail IN MX mail
        x    IN CAA 0 issue "ca.example"
        y    CH A 192.0.2.1
        """
    )
    reply = as_user(carol).post("/api/dns/zones/import/", {"zone_file": text}, format="json")
    assert reply.status_code == 400
    messages = reply.json()["zone_file"]
    assert any(m.startswith("line 7: MX takes 2 values") for m in messages), messages
    assert any(m.startswith("line 8: record type CAA is not supported") for m in messages)
    assert any(m.startswith("line 9: class CH is not supported") for m in messages)
    assert not Zone.objects.exists()


def test_record_level_errors_also_name_their_lines(as_user, carol):
    text = textwrap.dedent(
        """\
        $ORIGIN broken.example.
        @    3600 IN SOA ns1 hostmaster 1 2 3 4 5
        ns1  IN A 192.0.2.1
        www  IN A 999.1.1.1
        www  IN CNAME other
        """
    )
    reply = as_user(carol).post("/api/dns/zones/import/", {"zone_file": text}, format="json")
    assert reply.status_code == 400
    messages = reply.json()["zone_file"]
    assert any(m.startswith("line 4: value:") and "IPv4" in m for m in messages), messages
    assert not any(m.startswith("line 5") for m in messages)  # the A of line 4 never counted
    assert not Zone.objects.exists()


def test_a_cname_beside_other_data_in_the_file_is_refused_with_its_line(as_user, carol):
    text = (
        "$ORIGIN c.example.\n@ IN SOA ns1 h 1 2 3 4 5\nns1 A 192.0.2.1\n"
        "www A 192.0.2.2\nwww CNAME ns1\n"
    )
    reply = as_user(carol).post("/api/dns/zones/import/", {"zone_file": text}, format="json")
    assert reply.status_code == 400
    assert reply.json()["zone_file"][0].startswith("line 5: name:")


def test_unbalanced_parentheses_and_unclosed_quotes_are_reported(carol):
    with pytest.raises(zonefile.ZoneFileError) as caught:
        zonefile.parse_zone_file(
            '$ORIGIN p.example.\n@ IN SOA a b ( 1 2\n3 4 5\nx TXT "open\n', origin=None
        )
    assert (4, "a quoted string is not closed on its line") in caught.value.problems
    assert (2, "'(' is never closed") in caught.value.problems


def test_relative_names_before_any_origin_are_refused():
    with pytest.raises(zonefile.ZoneFileError) as caught:
        zonefile.parse_zone_file("www IN A 192.0.2.1\n")
    assert caught.value.problems[0][0] == 1


def test_ttl_units_and_either_order_of_ttl_and_class():
    parsed = zonefile.parse_zone_file(
        "$TTL 1d\na IN 1h30m A 192.0.2.1\nb 2w IN A 192.0.2.2\nc A 192.0.2.3\n",
        origin="t.example",
    )
    assert [r.ttl for r in parsed.records] == [5400, 1209600, 86400]


def test_import_into_an_existing_zone_adds_or_replaces(
    as_user, carol, make_zone, make_record, django_capture_on_commit_callbacks
):
    zone = make_zone(name="merge.example")
    make_record(zone, name="old", record_type="A", value="192.0.2.5")
    make_record(zone, name="keep", record_type="A", value="192.0.2.6")
    client = as_user(carol)
    text = "keep IN A 192.0.2.6\nnew IN A 192.0.2.7\n"
    added = client.post(
        "/api/dns/zones/import/", {"zone_file": text, "zone": zone.pk}, format="json"
    )
    assert added.status_code == 200, added.json()
    assert added.json()["import"]["added"] == 1
    assert sorted(zone.records.values_list("name", flat=True)) == ["keep", "new", "old"]
    serial = Zone.objects.get(pk=zone.pk).serial
    with django_capture_on_commit_callbacks(execute=True):
        replaced = client.post(
            "/api/dns/zones/import/",
            {"zone_file": text, "zone": zone.pk, "replace": True},
            format="json",
        )
    assert replaced.status_code == 200
    assert replaced.json()["import"]["removed"] == 3
    assert sorted(zone.records.values_list("name", flat=True)) == ["keep", "new"]
    assert Zone.objects.get(pk=zone.pk).serial > serial
    (event,) = events("zone_updated")
    assert {"field": "records_count", "old_value": 3, "new_value": 2} in event.data["changes"]
    assert events("record_deleted") == []  # one zone event, not one per record


def test_import_into_a_zone_needs_change_access(as_user, alice, make_zone):
    zone = make_zone()
    grant(zone, alice)
    reply = as_user(alice).post(
        "/api/dns/zones/import/", {"zone_file": "a A 192.0.2.1\n", "zone": zone.pk}, format="json"
    )
    assert reply.status_code == 403
    assert not Record.objects.exists()


def test_import_into_an_existing_zone_refuses_a_cname_clash_with_current_records(
    as_user, carol, make_zone, make_record
):
    zone = make_zone()
    make_record(zone, name="www", record_type="A", value="192.0.2.1")
    reply = as_user(carol).post(
        "/api/dns/zones/import/",
        {"zone_file": "x A 192.0.2.9\nwww CNAME x\n", "zone": zone.pk},
        format="json",
    )
    assert reply.status_code == 400
    assert reply.json()["zone_file"][0].startswith("line 2:")
    assert zone.records.count() == 1


# --- RPZ -------------------------------------------------------------------------------------


def rpz_rules():
    with service_writes():
        feed = ThreatFeed.objects.create(name="abuse", file_path="/tmp/x", category="malware")
    RpzRule.objects.bulk_create(
        [
            RpzRule(domain="evil.example", action="nxdomain", category="malware"),
            RpzRule(domain="quiet.example", action="nodata", include_subdomains=False),
            RpzRule(domain="ok.example", action="passthru"),
            RpzRule(domain="drop.example", action="drop"),
            RpzRule(domain="ads.example", action="redirect", redirect_target="block.corp.example"),
            RpzRule(domain="evil.example", action="drop", feed=feed, source="abuse"),
            RpzRule(domain="feed-only.example", action="nxdomain", feed=feed, source="abuse"),
        ]
    )


def test_rpz_export_writes_one_policy_per_domain(as_user, bob):
    rpz_rules()
    reply = as_user(bob).get("/api/dns/rpz/export/")
    assert reply.status_code == 200
    text = reply.content.decode()
    assert "$ORIGIN rpz.\n" in text
    lines = [line.split(";")[0].strip() for line in text.splitlines() if "CNAME" in line]
    assert "evil.example\tCNAME\t." in lines and "*.evil.example\tCNAME\t." in lines
    assert "quiet.example\tCNAME\t*." in lines
    assert not any(line.startswith("*.quiet") for line in lines)
    assert "ok.example\tCNAME\trpz-passthru." in lines
    assert "drop.example\tCNAME\trpz-drop." in lines
    assert "ads.example\tCNAME\tblock.corp.example." in lines
    assert "feed-only.example\tCNAME\t." in lines
    assert sum(line.startswith("evil.example") for line in lines) == 1  # manual rule wins


@needs_checkzone
def test_rpz_export_passes_named_checkzone(as_user, carol, tmp_path):
    rpz_rules()
    text = as_user(carol).get("/api/dns/rpz/export/").content.decode()
    code, output = named_checkzone("rpz", text, tmp_path)
    assert code == 0, output + text
