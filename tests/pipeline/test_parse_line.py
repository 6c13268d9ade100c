"""parse_line: format detection, hints, unknown and malformed lines, never an exception."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incidents.pipeline.parsers import MAX_LINE_LENGTH, parse_line

AUTH = "Mar 10 14:02:11 web01 sshd[811]: Failed password for root from 203.0.113.45 port 1 ssh2"
ACCESS = '192.0.2.1 - - [10/Mar/2025:14:02:11 +0000] "GET / HTTP/1.1" 200 5 "-" "x"'
BIND = "client 10.0.0.5#53211: query: example.com IN A +"
JSON = '{"msg": "hello"}'


@pytest.mark.parametrize(
    ("line", "fmt"), [(AUTH, "syslog"), (ACCESS, "access"), (BIND, "bind"), (JSON, "json")]
)
def test_formats_are_detected_without_a_hint(line, fmt):
    assert parse_line(line).format == fmt


@pytest.mark.parametrize(
    ("hint", "line", "fmt"),
    [
        ("/var/log/auth.log.1", AUTH, "syslog"),
        ("nginx", ACCESS, "access"),
        ("/var/log/named/queries.log", BIND, "bind"),
        ("app.jsonl", JSON, "json"),
        # A hint is a preference: a line of another format is still recognised.
        ("nginx", AUTH, "syslog"),
        ("something-else", ACCESS, "access"),
    ],
)
def test_source_hints(hint, line, fmt):
    assert parse_line(line, source_hint=hint).format == fmt


@pytest.mark.parametrize(
    "garbage",
    [
        "hello world",
        "",
        "   ",
        "\x00\x01\x02 binary",
        "-- MARK --",
        "[1, 2, 3]",
        "12345",
        "GET / HTTP/1.1",
        "Traceback (most recent call last):",
    ],
)
def test_garbage_is_unknown_and_not_malformed(garbage):
    parsed = parse_line(garbage)
    assert (parsed.format, parsed.category, parsed.action) == ("unknown", "unknown", None)
    assert not parsed.malformed
    assert parsed.timestamp is None


def test_trailing_newline_is_not_part_of_the_line():
    assert parse_line(AUTH + "\r\n").raw == AUTH


def test_bytes_are_decoded_with_replacement():
    parsed = parse_line(
        AUTH.replace("root", "r\udcffoot").encode("utf-8", "surrogateescape") + b"\n"
    )
    assert parsed.action == "login_failure" and parsed.fields["user"] == "r\ufffdoot"


def test_overlong_line_is_malformed_and_truncated():
    parsed = parse_line("x" * (MAX_LINE_LENGTH + 10))
    assert parsed.malformed and len(parsed.raw) == MAX_LINE_LENGTH


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_without_raising(text):
    parsed = parse_line(text)
    assert parsed.category in ("authentication", "authorization", "web", "dns", "system", "unknown")


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([AUTH, ACCESS, BIND, JSON, '<34>1 2025-03-10T14:00:00Z h a - - [x@1 k="v"] m']),
    st.integers(min_value=0, max_value=120),
    st.text(max_size=20),
)
def test_damaged_real_lines_never_raise(line, cut, noise):
    parse_line(line[:cut] + noise + line[cut:])
