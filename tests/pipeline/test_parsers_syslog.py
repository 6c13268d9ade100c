"""Syslog headers: RFC 3164 (with and without PRI, year, RFC 3339 time) and RFC 5424."""

from datetime import UTC, datetime, timedelta, timezone

from incidents.pipeline.parsers import parse_line

REFERENCE = datetime(2025, 3, 11, 9, 0, tzinfo=UTC)


def test_rfc3164_example_from_the_rfc_with_pri():
    parsed = parse_line(
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        reference=REFERENCE,
    )
    assert parsed.format == "syslog"
    assert parsed.fields["facility"] == "auth" and parsed.fields["level"] == "crit"
    assert parsed.fields["host"] == "mymachine" and parsed.fields["app"] == "su"
    # October is after March 2025: the line is from the previous October.
    assert parsed.timestamp == datetime(2024, 10, 11, 22, 14, 15, tzinfo=UTC)
    assert (parsed.category, parsed.action) == ("authorization", "su_failure")
    assert parsed.fields["user"] == "lonvick" and parsed.fields["target_user"] == "root"


def test_rfc3164_file_form_without_pri_with_pid_and_single_digit_day():
    parsed = parse_line(
        "Mar  1 06:25:43 web01 CRON[1811]: (root) CMD (run-parts /etc/cron.daily)",
        reference=REFERENCE,
    )
    assert parsed.timestamp == datetime(2025, 3, 1, 6, 25, 43, tzinfo=UTC)
    assert parsed.fields["pid"] == 1811 and parsed.fields["app"] == "CRON"
    assert parsed.fields["message"] == "(root) CMD (run-parts /etc/cron.daily)"
    assert (parsed.category, parsed.action) == ("system", "log")
    assert "facility" not in parsed.fields


def test_rfc3164_december_line_read_in_january_belongs_to_last_year():
    parsed = parse_line(
        "Dec 31 23:59:58 web01 kernel: eth0: link down",
        reference=datetime(2025, 1, 1, 0, 0, 5, tzinfo=UTC),
    )
    assert parsed.timestamp == datetime(2024, 12, 31, 23, 59, 58, tzinfo=UTC)


def test_rfc3164_timestamp_with_a_year():
    parsed = parse_line("Mar 10 2025 14:02:11 fw01 kernel: DROP IN=eth0", reference=REFERENCE)
    assert parsed.timestamp == datetime(2025, 3, 10, 14, 2, 11, tzinfo=UTC)


def test_rsyslog_rfc3339_timestamp_keeps_its_timezone():
    parsed = parse_line(
        "2025-03-10T15:02:11.512345+01:00 web01 sshd[811]: Server listening on 0.0.0.0 port 22."
    )
    assert parsed.timestamp == datetime(
        2025, 3, 10, 15, 2, 11, 512345, tzinfo=timezone(timedelta(hours=1))
    )
    assert parsed.timestamp.astimezone(UTC).hour == 14
    assert (parsed.category, parsed.action) == ("system", "service_started")


def test_timestamp_without_zone_uses_the_django_time_zone():
    parsed = parse_line("2025-03-10 14:02:11 web01 app: hello")
    assert parsed.timestamp.tzinfo is not None
    assert parsed.timestamp.utcoffset() == timedelta(0)  # TIME_ZONE = "UTC"


def test_line_without_tag_keeps_host_and_message():
    parsed = parse_line("Mar 10 14:02:11 switch01 %LINK-3-UPDOWN: Interface Gi0/1, changed state")
    assert parsed.fields["host"] == "switch01"
    assert "Interface Gi0/1" in parsed.fields["message"]


def test_rfc5424_example_with_structured_data_and_bom():
    parsed = parse_line(
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] '
        "\ufeffAn application event log entry..."
    )
    assert parsed.format == "syslog5424"
    assert parsed.timestamp == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
    assert parsed.fields["facility"] == "local4" and parsed.fields["level"] == "notice"
    assert parsed.fields["app"] == "evntslog" and parsed.fields["msgid"] == "ID47"
    assert "procid" not in parsed.fields
    assert parsed.fields["structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}
    }
    assert parsed.fields["message"] == "An application event log entry..."


def test_rfc5424_several_elements_escapes_and_no_message():
    parsed = parse_line(
        r'<14>1 2025-03-10T14:00:00+00:00 web01 app 77 - [a@1 x="q\"uote" y="br\]acket"]'
        r'[b@2 z="back\\slash"]'
    )
    assert parsed.fields["structured_data"] == {
        "a@1": {"x": 'q"uote', "y": "br]acket"},
        "b@2": {"z": "back\\slash"},
    }
    assert parsed.fields["pid"] == 77
    assert parsed.fields["message"] == ""


def test_rfc5424_nil_timestamp_and_sshd_message_is_understood():
    parsed = parse_line(
        "<38>1 - bastion sshd 9001 - - Failed password for root from 192.0.2.7 port 40022 ssh2"
    )
    assert parsed.timestamp is None
    assert (parsed.category, parsed.action) == ("authentication", "login_failure")
    assert parsed.fields["src_ip"] == "192.0.2.7"


def test_rfc5424_with_unterminated_structured_data_is_malformed():
    parsed = parse_line('<14>1 2025-03-10T14:00:00Z web01 app - - [a@1 x="never closed')
    assert parsed.malformed and parsed.format == "syslog5424"
    assert "structured data" in parsed.error


def test_pri_out_of_range_is_malformed():
    parsed = parse_line("<999>Mar 10 14:02:11 web01 app: hello")
    assert parsed.malformed and "PRI" in parsed.error


def test_pri_followed_by_garbage_is_malformed():
    parsed = parse_line("<13>this is not a syslog header")
    assert parsed.malformed and parsed.format == "syslog"


def test_impossible_date_is_malformed():
    parsed = parse_line("Feb 30 10:00:00 web01 app: hello", reference=REFERENCE)
    assert parsed.malformed and "date" in parsed.error


def test_timestamp_alone_is_malformed():
    parsed = parse_line("Mar 10 14:02:11")
    assert parsed.malformed
