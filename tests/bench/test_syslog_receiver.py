"""The syslog receiver benchmark's parts, and a short real measurement."""

from bench import syslog_receiver


def test_the_traffic_is_realistic_syslog_of_every_kind():
    lines = syslog_receiver.messages(12)
    assert len(lines) == 12 and len(set(lines)) == 12
    assert all(line.startswith(b"<") and 60 < len(line) < 300 for line in lines)
    for app in (b"sshd[", b"sudo:", b" nginx ", b"named[", b"CRON["):
        assert any(app in line for line in lines), app


def test_a_short_run_counts_every_tcp_line_and_states_the_ratio():
    rows = []
    for name in ("receiver", "ceiling"):
        target = syslog_receiver.Target(name, "asyncio")
        try:
            row = syslog_receiver.measure(target, "tcp", "octet", 0.3, 1)
        finally:
            target.stop()
        row.update(run=1, loop="asyncio")
        rows.append(row)
    for row in rows:
        assert row["sent"] > 0 and row["received"] == row["sent"] and row["lost"] == 0
    table = syslog_receiver.report(rows)
    assert "| 1 | tcp/octet | receiver |" in table and "x, " in table
