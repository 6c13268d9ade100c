"""BIND query logs, in file form and through syslog."""

from datetime import UTC, datetime

import pytest

from incidents.pipeline.parsers import parse_line


def test_modern_query_line_with_timestamp_and_category():
    parsed = parse_line(
        "10-Mar-2025 14:02:11.123 queries: info: client @0x7f2a1c0bd8e0 10.0.0.5#53211 "
        "(example.com): query: example.com IN A +E(0)K (10.0.0.1)"
    )
    assert (parsed.format, parsed.category, parsed.action) == ("bind", "dns", "query")
    assert parsed.timestamp == datetime(2025, 3, 10, 14, 2, 11, 123000, tzinfo=UTC)
    fields = parsed.fields
    assert fields["src_ip"] == "10.0.0.5" and fields["port"] == 53211
    assert (fields["domain"], fields["qclass"], fields["qtype"]) == ("example.com", "IN", "A")
    assert fields["flags"] == "+E(0)K" and fields["dst"] == "10.0.0.1"
    assert fields["log_category"] == "queries"


@pytest.mark.parametrize(
    "line",
    [
        "client @0x7f2a1c0bd8e0 10.0.0.5#53211 (example.com): "
        "query: example.com IN A +E(0)K (10.0.0.1)",
        "client 10.0.0.5#53211 (example.com): query: example.com IN A +E (10.0.0.1)",
        "client 10.0.0.5#53211: query: example.com IN A +",
        "queries: client 10.0.0.5#53211 (example.com): query: example.com IN A -",
    ],
)
def test_older_forms_without_timestamp(line):
    parsed = parse_line(line)
    assert parsed.action == "query" and parsed.timestamp is None
    assert parsed.fields["domain"] == "example.com" and parsed.fields["src_ip"] == "10.0.0.5"


def test_view_ipv6_client_and_trailing_dot_are_normalised():
    parsed = parse_line(
        "client @0x7f 2001:db8::53#4000 (WWW.Example.COM.): view internal: "
        "query: WWW.Example.COM. IN AAAA +E(0)DCK (2001:db8::1)"
    )
    assert parsed.fields["domain"] == "www.example.com"
    assert parsed.fields["view"] == "internal" and parsed.fields["src_ip"] == "2001:db8::53"


def test_query_through_syslog_named():
    parsed = parse_line(
        "Mar 10 14:02:11 ns1 named[812]: client @0x7f2a1c0bd8e0 10.0.0.5#53211 (example.com): "
        "query: example.com IN MX +E(0)K (10.0.0.1)"
    )
    assert (parsed.format, parsed.category, parsed.fields["qtype"]) == ("syslog", "dns", "MX")
    assert parsed.fields["host"] == "ns1"


def test_rpz_rewrite_and_denied_query():
    rpz = parse_line(
        "10-Mar-2025 14:22:41.204 rpz: info: client @0x7f 10.20.1.23#5353 "
        "(bad.example): rpz QNAME NXDOMAIN rewrite bad.example/A/IN via bad.example.rpz.local"
    )
    assert rpz.action == "rpz_rewrite" and rpz.fields["domain"] == "bad.example"
    assert rpz.fields["rpz_policy"] == "NXDOMAIN"
    denied = parse_line(
        "client @0x7f 192.0.2.9#4444 (x.example): query (cache) 'x.example/A/IN' denied"
    )
    assert denied.action == "query_denied" and denied.fields["qtype"] == "A"


def test_measures_of_a_random_looking_name():
    parsed = parse_line(
        "client 10.0.0.5#1: query: q7x2kz9pl4mv8rt3ys6wb1nc5hdj0fga.nightowl-relay.example IN TXT +"
    )
    assert parsed.fields["longest_label_length"] == 32
    assert parsed.fields["label_entropy"] > 4.5
    assert parsed.fields["label_count"] == 3


def test_queries_category_with_broken_body_is_malformed():
    parsed = parse_line("10-Mar-2025 14:02:11.123 queries: info: something else entirely")
    assert parsed.malformed and parsed.format == "bind"


def test_client_line_of_unknown_kind_is_malformed():
    parsed = parse_line("10-Mar-2025 14:02:11.123 queries: info: client 10.0.0.5#1: babble")
    assert parsed.malformed


def test_bad_date_in_bind_timestamp_is_malformed():
    parsed = parse_line(
        "31-Feb-2025 14:02:11.123 queries: info: client 10.0.0.5#1: query: a.b IN A +"
    )
    assert parsed.malformed and "date" in parsed.error
