"""The source hint of a message, from its app-name or tag."""

import pytest

from incidents.syslog.routing import source_for


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("<38>Mar 10 14:02:11 web01 sshd[811]: Failed password for root", "sshd"),
        ("<38>Mar  1 14:02:11 web01 sshd-session[811]: Accepted publickey", "sshd"),
        ("<85>Mar 10 14:02:11 web01 sudo:    alice : TTY=pts/0 ; COMMAND=/bin/ls", "sudo"),
        ("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick", "auth"),
        ("<30>Mar 10 14:02:11 ns1 named[77]: client @0x1 10.0.0.5#53211: query: a IN A +", "named"),
        ("<190>Mar 10 14:02:11 web01 nginx: 203.0.113.7 - - [...]", "nginx"),
        ("<190>Mar 10 14:02:11 web01 nginx_access: 203.0.113.7 - - [...]", "nginx"),
        ("<190>Mar 10 2025 14:02:11 web01 apache2-access: 203.0.113.7 - - [...]", "apache"),
        ("<190>1 2025-03-10T14:02:11Z web01 nginx - - - 203.0.113.7 - -", "nginx"),
        ("<38>1 2025-03-10T14:02:11.1+01:00 web01 sshd 811 - - Failed password", "sshd"),
        ("2025-03-10T14:02:11.123+00:00 web01 HTTPD[9]: x", "apache"),
        ("<13>Mar 10 14:02:11 web01 CRON[1811]: (root) CMD (run-parts)", "syslog"),
        ("<13>1 2025-03-10T14:02:11Z web01 - - - - no app", "syslog"),
        ("203.0.113.7 - - [10/Mar/2025:14:02:11 +0000] no header", "syslog"),
        ('{"event": "json over tcp"}', "syslog"),
    ],
)
def test_the_source_comes_from_the_app_name_or_tag(text, source):
    assert source_for(text) == source
