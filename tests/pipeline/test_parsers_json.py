"""JSON lines: key mapping and classification."""

import json
from datetime import UTC, datetime

from incidents.pipeline.parsers import parse_line


def line(**document):
    return json.dumps(document)


def test_common_keys_are_mapped():
    parsed = parse_line(
        line(
            timestamp="2025-03-10T14:06:12.000Z",
            level="info",
            service="portal",
            event="login_success",
            username="alice",
            client_ip="10.20.1.15",
            host="app01",
            msg="User logged in",
        )  # fmt: skip
    )
    assert (parsed.format, parsed.category, parsed.action) == (
        "json", "authentication", "login_success",
    )  # fmt: skip
    assert parsed.timestamp == datetime(2025, 3, 10, 14, 6, 12, tzinfo=UTC)
    fields = parsed.fields
    assert fields["user"] == "alice" and fields["src_ip"] == "10.20.1.15"
    assert fields["host"] == "app01" and fields["level"] == "info"
    assert fields["message"] == "User logged in" and fields["service"] == "portal"


def test_alternative_spellings_and_epoch_times():
    parsed = parse_line(
        line(time=1741615331, severity="ERROR", message="x", source_ip="192.0.2.1", user="bob")
    )
    assert parsed.timestamp == datetime(2025, 3, 10, 14, 2, 11, tzinfo=UTC)
    assert parsed.fields["src_ip"] == "192.0.2.1" and parsed.fields["level"] == "ERROR"
    millis = parse_line(line(**{"@timestamp": 1741615331000}))
    assert millis.timestamp == datetime(2025, 3, 10, 14, 2, 11, tzinfo=UTC)


def test_ecs_nested_document():
    parsed = parse_line(
        line(
            **{
                "@timestamp": "2025-03-10T14:02:11+00:00",
                "event": {
                    "category": ["authentication"],
                    "outcome": "failure",
                    "action": "ssh_login",
                },
                "source": {"ip": "203.0.113.45"},
                "user": {"name": "root"},
                "host": {"name": "web01"},
            }
        )  # fmt: skip
    )
    assert (parsed.category, parsed.action) == ("authentication", "login_failure")
    assert parsed.fields["src_ip"] == "203.0.113.45" and parsed.fields["user"] == "root"
    assert parsed.fields["host"] == "web01"


def test_failed_login_recognised_from_the_message():
    parsed = parse_line(
        line(msg="Authentication failed for user carol", user="carol", ip="192.0.2.8")
    )
    assert (parsed.category, parsed.action) == ("authentication", "login_failure")


def test_http_request_is_web():
    parsed = parse_line(
        line(
            client_ip="198.51.100.7",
            method="GET",
            path="/a?q=%3Cscript%3E",
            status="404",
            user_agent="curl/8",
        )  # fmt: skip
    )
    assert (parsed.category, parsed.action) == ("web", "http_request")
    assert parsed.fields["status"] == 404 and parsed.fields["url_decoded"] == "/a?q=<script>"


def test_dns_query_is_dns():
    parsed = parse_line(line(client_ip="10.0.0.5", query="Evil.Example.", qtype="A"))
    assert (parsed.category, parsed.action) == ("dns", "query")
    assert parsed.fields["domain"] == "evil.example"


def test_plain_application_line_is_system():
    parsed = parse_line(line(level="info", message="Threat feed refresh finished", job="feeds"))
    assert (parsed.category, parsed.action) == ("system", "log")
    assert parsed.fields["document"]["job"] == "feeds"


def test_invalid_json_is_malformed():
    parsed = parse_line('{"level": "info", "message": ')
    assert parsed.malformed and parsed.format == "json" and "invalid JSON" in parsed.error


def test_unparseable_timestamp_is_none_not_an_error():
    parsed = parse_line(line(timestamp="yesterday-ish", message="x"))
    assert parsed.timestamp is None and not parsed.malformed
