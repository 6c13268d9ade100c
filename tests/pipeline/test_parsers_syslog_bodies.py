"""Syslog messages whose body is a line of another format: nginx and Apache access logs
and BIND query logs sent over syslog are read by their own parser, header kept."""

from datetime import UTC, datetime

from incidents.pipeline.parsers import parse_line
from tests.pipeline.helpers import Feed, access, at

REFERENCE = datetime(2025, 3, 11, 9, 0, tzinfo=UTC)
SCAN = (
    '203.0.113.7 - - [10/Mar/2025:14:02:12 +0000] "GET /static/../../etc/passwd HTTP/1.1" '
    '404 162 "-" "sqlmap/1.7.2#stable (https://sqlmap.org)"'
)
QUERY = (
    "client @0x7f2a1c0bd8e0 10.0.0.5#53211 (example.com): query: example.com IN A +E(0)K (10.0.0.1)"
)


def test_an_nginx_access_line_sent_by_nginx_over_syslog_is_a_web_request():
    parsed = parse_line(f"<190>Mar 10 14:02:11 web01 nginx: {SCAN}", reference=REFERENCE)
    assert (parsed.format, parsed.category, parsed.action) == ("syslog", "web", "http_request")
    assert parsed.fields["src_ip"] == "203.0.113.7"
    assert parsed.fields["path"] == "/static/../../etc/passwd"
    assert parsed.fields["status"] == 404
    assert parsed.fields["body_format"] == "access"
    # The header's host, app, facility and time are kept (nginx's own time is a second on).
    assert parsed.fields["host"] == "web01" and parsed.fields["app"] == "nginx"
    assert parsed.fields["facility"] == "local7"
    assert parsed.timestamp == datetime(2025, 3, 10, 14, 2, 11, tzinfo=UTC)


def test_rfc5424_apache_lines_are_read_the_same_way():
    parsed = parse_line(f"<190>1 2025-03-10T14:02:11.5Z web02 apache2 - - - {SCAN}")
    assert (parsed.category, parsed.action) == ("web", "http_request")
    assert parsed.fields["host"] == "web02" and parsed.fields["src_ip"] == "203.0.113.7"
    assert parsed.timestamp == datetime(2025, 3, 10, 14, 2, 11, 500000, tzinfo=UTC)


def test_without_a_header_time_the_body_time_is_used():
    parsed = parse_line(f"<190>1 - web02 httpd - - - {SCAN}")
    assert parsed.timestamp == datetime(2025, 3, 10, 14, 2, 12, tzinfo=UTC)


def test_an_access_line_under_any_tag_is_recognised_by_its_content():
    parsed = parse_line(f"<190>Mar 10 14:02:11 web01 web-frontend: {SCAN}", reference=REFERENCE)
    assert (parsed.category, parsed.action) == ("web", "http_request")
    assert parsed.fields["app"] == "web-frontend"


def test_nginx_error_log_lines_stay_system_messages():
    parsed = parse_line(
        '<187>Mar 10 14:02:11 web01 nginx: 2025/03/10 14:02:11 [error] 12#0: *1 open() "/x" '
        "failed (2: No such file or directory)",
        reference=REFERENCE,
    )
    assert (parsed.category, parsed.action, parsed.malformed) == ("system", "log", False)


def test_a_broken_access_line_from_nginx_is_malformed_with_the_header_kept():
    parsed = parse_line(
        '<190>Mar 10 14:02:11 web01 nginx: 203.0.113.7 - - [10/Mar/2025:14:02:11 +0000] "GET / '
        'HTTP/1.1" abc',
        reference=REFERENCE,
    )
    assert parsed.malformed and "access log" in parsed.error
    assert parsed.fields["host"] == "web01"


def test_named_query_lines_are_dns_queries_under_named_or_by_their_content():
    for tag, message in (("named[811]", QUERY), ("bind9", f"queries: info: {QUERY}")):
        parsed = parse_line(f"<30>Mar 10 14:02:11 ns1 {tag}: {message}", reference=REFERENCE)
        assert (parsed.category, parsed.action) == ("dns", "query"), tag
        assert parsed.fields["domain"] == "example.com" and parsed.fields["host"] == "ns1"


def test_a_scan_sent_over_syslog_fires_the_same_rules_as_the_access_log_line(state):
    path = "/static/../../etc/passwd"
    plain = Feed(state)(access(at(0), ip="192.0.2.10", path=path, status=404))
    over_syslog = Feed(state)(
        "<190>1 2025-03-10T14:00:00Z web01 nginx - - - "
        + access(at(0), ip="192.0.2.11", path=path, status=404)
    )
    assert "web_path_traversal" in plain
    assert over_syslog == plain


PORTAL_LOGIN = (
    '{"timestamp": "2025-03-10T14:02:10Z", "service": "portal", "event": "login_success", '
    '"user": "alice", "src_ip": "198.51.100.23"}'
)


def test_a_json_object_sent_over_syslog_is_read_as_the_json_line_it_is():
    over_syslog = parse_line(f"<134>1 2025-03-10T14:02:11Z web01 portal - - - {PORTAL_LOGIN}")
    uploaded = parse_line(PORTAL_LOGIN, source_hint="json")
    assert (over_syslog.category, over_syslog.action) == (uploaded.category, uploaded.action)
    assert over_syslog.fields["user"] == uploaded.fields["user"] == "alice"
    assert over_syslog.fields["src_ip"] == "198.51.100.23"
    assert over_syslog.fields["body_format"] == "json"
    assert over_syslog.fields["host"] == "web01" and over_syslog.fields["app"] == "portal"
    assert over_syslog.timestamp == datetime(2025, 3, 10, 14, 2, 11, tzinfo=UTC)


def test_a_message_that_only_looks_like_json_stays_a_plain_message():
    parsed = parse_line("<134>1 2025-03-10T14:02:11Z web01 portal - - - {not json at all")
    assert (parsed.category, parsed.action, parsed.malformed) == ("system", "log", False)
    assert parsed.fields["message"] == "{not json at all"
