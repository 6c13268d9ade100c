"""Each validation rule with a bad and a good example (pure functions, no database)."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError

from dns import validation as v

ZONE = "example.com"


def record(**fields):
    base = {"name": "www", "record_type": "A", "value": "192.0.2.1"}
    base.update(fields)
    return v.validate_record(ZONE, **base)


def errors_of(func, *args, **kwargs):
    with pytest.raises(ValidationError) as caught:
        func(*args, **kwargs)
    exc = caught.value
    return exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}


# --- Names -----------------------------------------------------------------------------------


def test_zone_name_is_stored_lower_case_without_the_final_dot():
    assert v.normalize_zone_name("Example.COM.") == "example.com"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        ".",
        "exa mple.com",
        "a..b",
        "-bad.example",
        "bad-.example",
        "*.example.com",
        "x" * 64 + ".com",
        ("a" * 60 + ".") * 5 + "com",
        "exa$mple.com",
    ],
)
def test_bad_zone_names_are_refused(bad):
    assert "name" in errors_of(v.normalize_zone_name, bad)


def test_a_label_of_63_characters_is_allowed_and_64_is_not():
    assert v.normalize_zone_name("a" * 63 + ".com") == "a" * 63 + ".com"
    assert "longer than 63" in errors_of(v.normalize_zone_name, "a" * 64 + ".com")["name"][0]


def test_a_name_of_253_characters_is_allowed_and_254_is_not():
    longest = ".".join(["a" * 63] * 3) + "." + "b" * 61
    assert len(longest) == 253
    assert v.normalize_zone_name(longest + ".") == longest
    assert "253" in errors_of(v.normalize_zone_name, longest + "b")["name"][0]


def test_owner_at_and_empty_mean_the_apex():
    assert record(name="@")["name"] == "@"
    assert record(name="")["name"] == "@"


def test_absolute_owner_inside_the_zone_is_stored_relative():
    assert record(name="WWW.Example.com.")["name"] == "www"
    assert record(name="example.com.")["name"] == "@"


def test_absolute_owner_outside_the_zone_is_refused():
    assert "outside the zone" in errors_of(record, name="www.other.org.")["name"][0]


def test_relative_owner_repeating_the_zone_name_is_refused_as_a_missing_dot():
    assert "www.example.com." in errors_of(record, name="www.example.com")["name"][0]


def test_wildcard_is_allowed_as_the_first_label_only():
    assert record(name="*")["name"] == "*"
    assert record(name="*.dev")["name"] == "*.dev"
    assert "first label" in errors_of(record, name="dev.*")["name"][0]
    assert "whole label" in errors_of(record, name="*dev")["name"][0]


def test_underscores_are_allowed_in_txt_and_srv_owners_but_not_in_host_names():
    assert record(name="_dmarc", record_type="TXT", value="v=DMARC1; p=none")["name"] == "_dmarc"
    assert "Underscores" in errors_of(record, name="my_host")["name"][0]
    assert (
        "Underscores"
        in errors_of(record, record_type="MX", name="mail_in", value="mx", priority=10)["name"][0]
    )


# --- Addresses -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["256.1.1.1", "1.2.3", "01.2.3.4", "2001:db8::1", "host"])
def test_an_a_record_needs_an_ipv4_address(bad):
    assert "IPv4" in errors_of(record, value=bad)["value"][0]


def test_an_a_record_accepts_an_ipv4_address():
    assert record(value=" 192.0.2.1 ")["value"] == "192.0.2.1"


@pytest.mark.parametrize("bad", ["192.0.2.1", "2001:db8::g", "fe80::1%eth0", "::1::2"])
def test_an_aaaa_record_needs_an_ipv6_address(bad):
    assert errors_of(record, record_type="AAAA", value=bad)["value"]


def test_an_aaaa_record_is_stored_compressed():
    assert record(record_type="AAAA", value="2001:0DB8:0:0:0:0:0:1")["value"] == "2001:db8::1"


# --- TTL and numbers --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, 2147483648, "ten", 1.5, True])
def test_ttl_must_be_0_to_2147483647(bad):
    assert "ttl" in errors_of(record, ttl=bad)


@pytest.mark.parametrize("good", [0, 300, 2147483647, "3600"])
def test_ttl_within_range_is_accepted(good):
    assert record(ttl=good)["ttl"] == int(good)


def test_mx_needs_a_priority_from_0_to_65535_and_a_host_name():
    good = record(record_type="MX", name="@", value="mail", priority=10)
    assert (good["priority"], good["value"]) == (10, "mail")
    assert "priority" in errors_of(record, record_type="MX", value="mail")
    assert (
        "65535" in errors_of(record, record_type="MX", value="mail", priority=65536)["priority"][0]
    )
    assert (
        "address" in errors_of(record, record_type="MX", value="192.0.2.1", priority=1)["value"][0]
    )
    assert (
        "Underscores" in errors_of(record, record_type="MX", value="mail_x", priority=1)["value"][0]
    )


def test_srv_needs_priority_weight_and_port_within_0_to_65535():
    good = record(
        record_type="SRV",
        name="_sip._tcp",
        value="sip.example.net.",
        priority=10,
        weight=5,
        port=5060,
    )
    assert good["port"] == 5060
    bad = errors_of(
        record, record_type="SRV", name="_sip._tcp", value="sip", priority=10, weight=70000
    )
    assert set(bad) == {"weight", "port"}


def test_srv_target_may_be_the_root_meaning_no_service():
    assert (
        record(record_type="SRV", name="_x._tcp", value=".", priority=0, weight=0, port=0)["value"]
        == "."
    )


def test_fields_a_type_does_not_have_are_refused():
    assert "no priority" in errors_of(record, priority=10)["priority"][0]


def test_unknown_record_type_is_refused():
    assert "record_type" in errors_of(record, record_type="CAA")


# --- Targets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rtype", ["CNAME", "NS", "PTR"])
def test_targets_are_relative_or_absolute_with_the_final_dot(rtype):
    assert record(record_type=rtype, name="x", value="Host")["value"] == "host"
    assert record(record_type=rtype, name="x", value="host.other.net.")["value"] == (
        "host.other.net."
    )
    message = errors_of(record, record_type=rtype, name="x", value="host.example.com")["value"][0]
    assert "host.example.com." in message


@pytest.mark.parametrize("rtype", ["NS", "PTR", "MX"])
def test_host_targets_may_not_be_addresses(rtype):
    extra = {"priority": 1} if rtype == "MX" else {}
    assert (
        "address"
        in errors_of(record, record_type=rtype, name="x", value="192.0.2.1.", **extra)["value"][0]
    )


def test_cname_target_may_hold_underscores_but_ns_target_may_not():
    assert record(record_type="CNAME", name="x", value="_acme.other.net.")["value"]
    assert errors_of(record, record_type="NS", name="x", value="_ns.other.net.")["value"]


# --- TXT ----------------------------------------------------------------------------------------


def test_a_txt_string_of_255_bytes_is_fine_and_256_in_quotes_is_refused():
    assert record(record_type="TXT", value='"' + "a" * 255 + '"')
    message = errors_of(record, record_type="TXT", value='"' + "a" * 256 + '"')["value"][0]
    assert "255 bytes" in message


def test_a_long_plain_txt_value_is_split_into_quoted_chunks_of_255_bytes():
    text = "k=" + "x" * 600
    assert record(record_type="TXT", value=text)["value"] == text
    chunks = v.parse_txt(text)
    assert [len(chunk) for chunk in chunks] == [255, 255, 92]
    assert v.txt_presentation(text).count('"') == 6


def test_txt_split_never_cuts_a_utf8_character():
    text = "é" * 200  # 400 bytes
    chunks = v.parse_txt(text)
    assert b"".join(chunks).decode() == text
    assert all(len(chunk) <= 255 for chunk in chunks)
    for chunk in chunks:
        chunk.decode()  # each piece is whole characters


def test_quoted_txt_strings_keep_their_boundaries_and_escapes():
    assert v.parse_txt('"a b" "c\\"d" "\\065"') == [b"a b", b'c"d', b"A"]
    assert "not closed" in errors_of(v.parse_txt, '"abc')["value"][0]
    assert "separated" in errors_of(v.parse_txt, '"a"b')["value"][0]


def test_empty_txt_is_refused():
    assert errors_of(record, record_type="TXT", value="  ")["value"]


# --- CNAME and record sets ----------------------------------------------------------------------


def existing(*rows):
    return [
        {"id": i, "name": n, "record_type": t, "value": val}
        for i, (n, t, val) in enumerate(rows, start=1)
    ]


def test_a_cname_at_the_apex_is_refused():
    assert "apex" in errors_of(record, record_type="CNAME", name="@", value="other.net.")["name"][0]


def test_a_cname_cannot_join_other_records_of_its_name():
    current = existing(("www", "A", "192.0.2.1"))
    candidate = {"name": "www", "record_type": "CNAME", "value": "web"}
    assert (
        "cannot exist beside" in errors_of(v.check_record_set, candidate, current, ZONE)["name"][0]
    )


def test_no_record_can_join_a_cname():
    current = existing(("www", "CNAME", "web"))
    candidate = {"name": "www", "record_type": "TXT", "value": "hello"}
    assert "is a CNAME" in errors_of(v.check_record_set, candidate, current, ZONE)["name"][0]


def test_a_name_can_have_only_one_cname():
    current = existing(("www", "CNAME", "web"))
    candidate = {"name": "www", "record_type": "CNAME", "value": "other"}
    assert "only one" in errors_of(v.check_record_set, candidate, current, ZONE)["name"][0]


def test_a_cname_may_be_replaced_by_editing_itself():
    current = existing(("www", "CNAME", "web"))
    v.check_record_set(
        {"id": 1, "name": "www", "record_type": "CNAME", "value": "other"}, current, ZONE
    )


def test_a_cname_is_fine_beside_records_of_other_names():
    v.check_record_set(
        {"name": "www", "record_type": "CNAME", "value": "web"},
        existing(("web", "A", "192.0.2.1")),
        ZONE,
    )


def test_identical_records_are_refused_including_relative_and_absolute_spellings():
    current = existing(("@", "MX", "mail"))
    candidate = {"name": "@", "record_type": "MX", "value": "mail.example.com."}
    assert "already exists" in errors_of(v.check_record_set, candidate, current, ZONE)["value"][0]
    v.check_record_set({"name": "@", "record_type": "MX", "value": "mail2"}, current, ZONE)


# --- Zone fields and SOA ---------------------------------------------------------------------


def test_soa_email_becomes_an_rname_with_escaped_dots():
    assert v.email_to_rname("John.Doe@Example.com") == "john\\.doe.example.com."
    assert v.rname_to_email("john\\.doe.example.com.") == "john.doe@example.com"
    assert v.email_to_rname("hostmaster@example.com") == "hostmaster.example.com."


@pytest.mark.parametrize("bad", ["hostmaster", "@example.com", "a b@example.com", "x@exa mple.com"])
def test_bad_soa_emails_are_refused(bad):
    assert "email" in errors_of(v.email_to_rname, bad)


def test_zone_fields_need_masters_for_slaves_and_forwarders_for_forward_zones():
    bad = errors_of(v.validate_zone_fields, {"zone_type": "slave", "masters": []})
    assert "masters" in bad
    bad = errors_of(v.validate_zone_fields, {"zone_type": "forward", "forwarders": ["x"]})
    assert "forwarders" in bad
    good = v.validate_zone_fields({"zone_type": "forward", "forwarders": ["192.0.2.53"]})
    assert good["forwarders"] == ["192.0.2.53"]


def test_primary_ns_is_a_host_name_not_an_address():
    assert "primary_ns" in errors_of(v.validate_zone_fields, {"primary_ns": "192.0.2.1"})
    assert v.validate_zone_fields({"primary_ns": "NS1.Example.com."})["primary_ns"] == (
        "ns1.example.com"
    )


def test_soa_timers_are_checked_like_ttls():
    assert "refresh" in errors_of(v.validate_zone_fields, {"refresh": -5})


# --- Serial -----------------------------------------------------------------------------------


def test_the_first_serial_of_a_day_is_the_date_with_00():
    assert v.next_serial(0, date(2025, 3, 9)) == 2025030900
    assert v.next_serial(2025030817, date(2025, 3, 9)) == 2025030900


def test_the_serial_counts_up_within_a_day():
    assert v.next_serial(2025030900, date(2025, 3, 9)) == 2025030901


def test_past_99_changes_a_day_the_serial_keeps_counting_and_never_repeats():
    serial, seen = 0, []
    for _ in range(250):
        serial = v.next_serial(serial, date(2025, 3, 9))
        seen.append(serial)
    assert seen == sorted(set(seen))
    assert seen[99] == 2025030999 and seen[100] == 2025031000
    # The next day continues above what was handed out, never back to YYYYMMDD00.
    assert v.next_serial(serial, date(2025, 3, 10)) == serial + 1


def test_a_serial_ahead_of_the_date_never_goes_backward():
    assert v.next_serial(2030010100, date(2025, 3, 9)) == 2030010101


def test_the_serial_cannot_pass_the_32_bit_limit():
    with pytest.raises(ValidationError):
        v.next_serial(2**32 - 1, date(2025, 3, 9))
