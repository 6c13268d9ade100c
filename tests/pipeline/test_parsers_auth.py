"""auth.log: sshd, sudo, su and PAM messages behind a syslog header."""

import pytest

from incidents.pipeline.parsers import parse_line

HEADER = "Mar 10 14:02:11 web01 "


def parse(message):
    return parse_line(HEADER + message)


@pytest.mark.parametrize(
    ("message", "action", "expected"),
    [
        (
            "sshd[811]: Accepted password for alice from 10.20.1.15 port 52144 ssh2",
            "login_success",
            {"user": "alice", "src_ip": "10.20.1.15", "port": 52144, "auth_method": "password"},
        ),
        (
            "sshd[811]: Accepted publickey for deploy from 10.20.5.10 port 40022 ssh2: "
            "ED25519 SHA256:q3Vx0fK2mB1bGf8yN7cLwZ5pR4sT9uHd6eJkA2oXyIc",
            "login_success",
            {
                "user": "deploy",
                "auth_method": "publickey",
                "key": "ED25519 SHA256:q3Vx0fK2mB1bGf8yN7cLwZ5pR4sT9uHd6eJkA2oXyIc",
            },
        ),
        (
            "sshd[811]: Failed password for root from 203.0.113.45 port 51234 ssh2",
            "login_failure",
            {"user": "root", "src_ip": "203.0.113.45", "invalid_user": False},
        ),
        (
            "sshd[811]: Failed password for invalid user admin from 203.0.113.45 port 51234 ssh2",
            "login_failure",
            {"user": "admin", "invalid_user": True},
        ),
        (
            "sshd[811]: Failed publickey for git from 2001:db8::7 port 40100 ssh2: RSA SHA256:abc",
            "login_failure",
            {"user": "git", "src_ip": "2001:db8::7", "auth_method": "publickey"},
        ),
        (
            "sshd[811]: Invalid user oracle from 203.0.113.45 port 40000",
            "invalid_user",
            {"user": "oracle", "src_ip": "203.0.113.45", "port": 40000, "invalid_user": True},
        ),
        (
            "sshd[811]: Connection closed by authenticating user root 203.0.113.45 port 51234 "
            "[preauth]",
            "connection_closed",
            {"user": "root", "src_ip": "203.0.113.45", "preauth": True},
        ),
        (
            "sshd[811]: Connection closed by 192.0.2.14 port 5555 [preauth]",
            "connection_closed",
            {"src_ip": "192.0.2.14", "preauth": True},
        ),
        (
            "sshd[811]: Disconnected from user alice 10.20.1.15 port 52144",
            "disconnected",
            {"user": "alice", "src_ip": "10.20.1.15"},
        ),
        (
            "sshd[811]: Disconnected from authenticating user root 203.0.113.45 port 51234 "
            "[preauth]",
            "disconnected",
            {"user": "root", "preauth": True},
        ),
        (
            "sshd[811]: Received disconnect from 203.0.113.45 port 51234:11: Bye Bye [preauth]",
            "disconnected",
            {"src_ip": "203.0.113.45", "reason": "Bye Bye", "preauth": True},
        ),
        (
            "sshd[811]: error: maximum authentication attempts exceeded for root from "
            "203.0.113.45 port 51234 ssh2 [preauth]",
            "max_auth_attempts",
            {"user": "root", "src_ip": "203.0.113.45"},
        ),
        (
            "sshd[811]: Disconnecting authenticating user root 203.0.113.45 port 51234: "
            "Too many authentication failures [preauth]",
            "max_auth_attempts",
            {"user": "root"},
        ),
        (
            "sshd[811]: PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh "
            "ruser= rhost=203.0.113.45  user=root",
            "pam_auth_failure",
            {"count": 2, "src_ip": "203.0.113.45", "user": "root"},
        ),
        (
            "sshd-session[811]: Failed password for root from ::ffff:203.0.113.45 port 1 ssh2",
            "login_failure",
            {"src_ip": "203.0.113.45"},
        ),
    ],
)
def test_sshd_messages(message, action, expected):
    parsed = parse(message)
    assert (parsed.category, parsed.action) == ("authentication", action)
    assert parsed.fields["service"] == "sshd"
    for name, value in expected.items():
        assert parsed.fields[name] == value, name


def test_unrecognised_sshd_message_is_a_system_line_not_an_error():
    parsed = parse("sshd[811]: Timeout before authentication for 192.0.2.1 port 4000")
    assert (parsed.category, parsed.action, parsed.malformed) == ("system", "log", False)


def test_sudo_command():
    parsed = parse(
        "sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
        "COMMAND=/usr/bin/systemctl restart nginx"
    )
    assert (parsed.category, parsed.action) == ("authorization", "sudo_command")
    assert parsed.fields["user"] == "alice" and parsed.fields["target_user"] == "root"
    assert parsed.fields["command"] == "/usr/bin/systemctl restart nginx"
    assert parsed.fields["tty"] == "pts/0" and parsed.fields["pwd"] == "/home/alice"


def test_sudo_command_containing_the_separator_is_kept_whole():
    parsed = parse("sudo: alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh -c a ; b")
    assert parsed.fields["command"] == "/bin/sh -c a ; b"


def test_sudo_incorrect_password_attempts():
    parsed = parse(
        "sudo:      bob : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/bob ; "
        "USER=root ; COMMAND=/bin/bash"
    )
    assert parsed.action == "sudo_auth_failure" and parsed.fields["attempts"] == 3
    one = parse(
        "sudo: bob : 1 incorrect password attempt ; TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/x"
    )
    assert one.action == "sudo_auth_failure" and one.fields["attempts"] == 1


def test_sudo_user_not_in_sudoers():
    parsed = parse(
        "sudo:      eve : user NOT in sudoers ; TTY=pts/1 ; PWD=/home/eve ; USER=root ; "
        "COMMAND=/bin/cat /etc/shadow"
    )
    assert parsed.action == "sudo_not_in_sudoers"
    assert parsed.fields["user"] == "eve" and parsed.fields["command"] == "/bin/cat /etc/shadow"


def test_sudo_command_not_allowed():
    parsed = parse(
        "sudo: eve : command not allowed ; TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/sh"
    )
    assert parsed.action == "sudo_command_denied"


def test_sudo_pam_authentication_failure():
    parsed = parse(
        "sudo: pam_unix(sudo:auth): authentication failure; logname=bob uid=1001 euid=0 "
        "tty=/dev/pts/1 ruser=bob rhost=  user=bob"
    )
    assert (parsed.category, parsed.action) == ("authorization", "pam_auth_failure")
    assert parsed.fields["user"] == "bob" and "src_ip" not in parsed.fields


def test_pam_session_lines():
    parsed = parse(
        "sudo: pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)"
    )
    assert parsed.action == "session_opened"
    assert parsed.fields["user"] == "root" and parsed.fields["by_user"] == "alice"
    ssh = parse("sshd[9]: pam_unix(sshd:session): session closed for user alice")
    assert (ssh.category, ssh.action) == ("authentication", "session_closed")
    cron = parse("CRON[9]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)")
    assert (cron.category, cron.action) == ("system", "session_opened")


@pytest.mark.parametrize(
    ("message", "action", "user", "target"),
    [
        ("su[77]: Successful su for root by alice", "su_success", "alice", "root"),
        ("su[77]: FAILED su for root by bob", "su_failure", "bob", "root"),
        ("su[77]: + pts/0 alice:root", "su_success", "alice", "root"),
        ("su[77]: - pts/1 bob:root", "su_failure", "bob", "root"),
        ("su[77]: (to root) carol on pts/2", "su_success", "carol", "root"),
        ("su[77]: FAILED SU (to root) backup on pts/3", "su_failure", "backup", "root"),
    ],
)
def test_su_messages(message, action, user, target):
    parsed = parse(message)
    assert (parsed.category, parsed.action) == ("authorization", action)
    assert parsed.fields["user"] == user and parsed.fields["target_user"] == target
