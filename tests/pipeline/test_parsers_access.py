"""nginx / Apache access logs."""

from datetime import UTC, datetime, timedelta, timezone

from incidents.pipeline.parsers import parse_line

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0"


def test_combined_log_line():
    parsed = parse_line(
        f'10.20.1.15 - alice [10/Mar/2025:14:02:11 +0000] "GET /alerts?status=open HTTP/1.1" '
        f'200 22410 "https://portal.northwind.example/dashboard" "{UA}"'
    )
    assert (parsed.format, parsed.category, parsed.action) == ("access", "web", "http_request")
    assert parsed.timestamp == datetime(2025, 3, 10, 14, 2, 11, tzinfo=UTC)
    fields = parsed.fields
    assert fields["src_ip"] == "10.20.1.15" and fields["user"] == "alice"
    assert "ident" not in fields
    assert (fields["method"], fields["path"], fields["protocol"]) == (
        "GET", "/alerts?status=open", "HTTP/1.1",
    )  # fmt: skip
    assert fields["url_path"] == "/alerts" and fields["query"] == "status=open"
    assert (fields["status"], fields["size"]) == (200, 22410)
    assert fields["referer"] == "https://portal.northwind.example/dashboard"
    assert fields["user_agent"] == UA


def test_common_log_format_without_referer_and_agent_and_dash_size():
    parsed = parse_line('192.0.2.1 - - [10/Mar/2025:14:02:11 -0500] "HEAD / HTTP/1.0" 304 -')
    assert parsed.fields["size"] == 0
    assert parsed.fields["referer"] is None and parsed.fields["user_agent"] is None
    assert parsed.timestamp == datetime(
        2025, 3, 10, 14, 2, 11, tzinfo=timezone(timedelta(hours=-5))
    )


def test_dash_referer_and_agent_become_none():
    parsed = parse_line('192.0.2.1 - - [10/Mar/2025:14:02:11 +0000] "GET / HTTP/1.1" 200 5 "-" "-"')
    assert parsed.fields["referer"] is None and parsed.fields["user_agent"] is None


def test_tls_bytes_on_a_plain_port_are_a_bad_request_not_a_broken_line():
    parsed = parse_line(
        r"192.0.2.14 - - [10/Mar/2025:14:17:45 +0000] "
        r'"\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03" 400 157 "-" "-"'
    )
    assert not parsed.malformed
    assert parsed.action == "bad_request" and parsed.fields["bad_request"] is True
    assert parsed.fields["method"] is None and parsed.fields["status"] == 400


def test_dash_request_line():
    parsed = parse_line('192.0.2.14 - - [10/Mar/2025:14:17:45 +0000] "-" 400 0 "-" "-"')
    assert parsed.action == "bad_request" and parsed.fields["request"] == "-"


def test_escaped_quotes_in_user_agent():
    parsed = parse_line(
        r'192.0.2.9 - - [10/Mar/2025:14:17:45 +0000] "GET / HTTP/1.1" 200 5 "-" "evil \"agent\""'
    )
    assert parsed.fields["user_agent"] == 'evil "agent"'


def test_path_is_url_decoded_twice_for_rules():
    parsed = parse_line(
        "198.51.100.77 - - [10/Mar/2025:14:47:31 +0000] "
        '"GET /download?file=%252e%252e%252fetc%252fpasswd HTTP/1.1" 404 153 "-" "-"'
    )
    assert parsed.fields["url_decoded"] == "/download?file=../etc/passwd"
    assert parsed.fields["path"] == "/download?file=%252e%252e%252fetc%252fpasswd"


def test_vhost_combined_and_trailing_fields():
    parsed = parse_line(
        "portal.northwind.example:443 10.20.1.15 - - [10/Mar/2025:14:02:11 +0000] "
        '"GET / HTTP/2.0" 200 5321 "-" "curl/8.5.0" 0.004 upstream=10.20.3.4:8000'
    )
    assert parsed.fields["vhost"] == "portal.northwind.example:443"
    assert parsed.fields["src_ip"] == "10.20.1.15" and parsed.fields["protocol"] == "HTTP/2.0"
    assert parsed.fields["extra"] == "0.004 upstream=10.20.3.4:8000"


def test_ipv6_client():
    parsed = parse_line(
        '2001:db8::1 - - [10/Mar/2025:14:02:11 +0000] "GET / HTTP/1.1" 200 5 "-" "x"'
    )
    assert parsed.fields["src_ip"] == "2001:db8::1"


def test_truncated_line_is_malformed():
    parsed = parse_line('203.0.113.77 - - [10/Mar/2025:14:02:11 +0000] "GET / HTTP/1.1" 2')
    assert parsed.malformed and parsed.format == "access" and parsed.category == "web"


def test_bad_month_is_malformed():
    parsed = parse_line('203.0.113.77 - - [10/Foo/2025:14:02:11 +0000] "GET / HTTP/1.1" 200 1')
    assert parsed.malformed
