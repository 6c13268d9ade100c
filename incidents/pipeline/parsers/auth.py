"""Linux auth.log messages: sshd, sudo, su and PAM (pam_unix).

Each function takes the syslog MSG part and returns `(category, action, fields)`, or None
when the message is not one it knows. Actions are the same words whatever wrote the line:
login_success, login_failure, invalid_user, sudo_command, sudo_auth_failure, su_failure...
"""

import re

from incidents.pipeline.parsers.base import (
    AUTHENTICATION,
    AUTHORIZATION,
    SYSTEM,
    normalise_address,
)

_ADDR = r"(?P<ip>[0-9A-Fa-f:.]+|\S+)"
_PORT = r"port (?P<port>\d+)"

# (pattern, category, action), tried in order; the first match wins.
_SSHD = [
    (
        rf"^Accepted (?P<method>\S+) for (?P<user>.+?) from {_ADDR} {_PORT}"
        r"(?: (?P<proto>ssh2))?(?:: (?P<key>.*))?$",
        AUTHENTICATION,
        "login_success",
    ),
    (
        rf"^Failed (?P<method>\S+) for (?P<invalid>invalid user )?(?P<user>.*?) from {_ADDR} "
        rf"{_PORT}(?: ssh2)?(?:: .*)?$",
        AUTHENTICATION,
        "login_failure",
    ),
    (
        rf"^Invalid user (?P<user>.*?) from {_ADDR}(?: {_PORT})?\s*$",
        AUTHENTICATION,
        "invalid_user",
    ),
    (
        rf"^(?:error: )?maximum authentication attempts exceeded for (?P<invalid>invalid user )?"
        rf"(?P<user>.*?) from {_ADDR} {_PORT}",
        AUTHENTICATION,
        "max_auth_attempts",
    ),
    (
        rf"^Disconnecting (?:authenticating |(?P<invalid>invalid ))?user (?P<user>.*?) {_ADDR} "
        rf"{_PORT}: Too many authentication failures",
        AUTHENTICATION,
        "max_auth_attempts",
    ),
    (
        rf"^Connection closed by (?:(?:authenticating|(?P<invalid>invalid)) user (?P<user>.*?) )?"
        rf"{_ADDR} {_PORT}(?P<preauth> \[preauth\])?\s*$",
        AUTHENTICATION,
        "connection_closed",
    ),
    (
        rf"^Disconnected from (?:(?:authenticating |(?P<invalid>invalid ))?user (?P<user>.*?) )?"
        rf"{_ADDR} {_PORT}(?P<preauth> \[preauth\])?\s*$",
        AUTHENTICATION,
        "disconnected",
    ),
    (
        rf"^Received disconnect from {_ADDR} {_PORT}:(?P<code>\d+): (?P<reason>.*?)"
        r"(?P<preauth> \[preauth\])?\s*$",
        AUTHENTICATION,
        "disconnected",
    ),
    (
        r"^PAM (?P<count>\d+) more authentication failures?; (?P<kv>.*)$",
        AUTHENTICATION,
        "pam_auth_failure",
    ),
    (
        rf"^Did not receive identification string from {_ADDR}(?: {_PORT})?",
        AUTHENTICATION,
        "no_identification",
    ),
    (
        rf"^banner exchange: Connection from {_ADDR} {_PORT}: (?P<reason>.*)$",
        AUTHENTICATION,
        "no_identification",
    ),
    (
        rf"^Connection from {_ADDR} {_PORT} on (?P<dst>\S+) port (?P<dst_port>\d+)",
        AUTHENTICATION,
        "connection_opened",
    ),
    (r"^Server listening on (?P<dst>\S+) port (?P<dst_port>\d+)", SYSTEM, "service_started"),
    (r"^Received signal (?P<signal>\d+); terminating", SYSTEM, "service_stopped"),
]
_SSHD = [(re.compile(pattern), category, action) for pattern, category, action in _SSHD]

_PAM = re.compile(r"^pam_(?P<module>\w+)\((?P<service>[^:)]+):(?P<type>\w+)\): (?P<text>.*)$")
_PAM_SESSION = re.compile(
    r"^session (?P<state>opened|closed) for user (?P<user>[^\s(]+)(?:\(uid=\d+\))?"
    r"(?: by (?P<by>[^\s(]*)(?:\(uid=\d+\))?)?"
)
_KEY_VALUE = re.compile(r"(\w+)=(\S*)")

_SUDO = re.compile(r"^\s*(?P<user>\S+) : (?P<body>.*)$")
_SUDO_ATTEMPTS = re.compile(r"^(?P<n>\d+) incorrect password attempts?$")

_SU = [
    (re.compile(r"^Successful su for (?P<target>\S+) by (?P<user>\S+)"), "su_success"),
    (re.compile(r"^FAILED su for (?P<target>\S+) by (?P<user>\S+)"), "su_failure"),
    (
        re.compile(r"^FAILED SU \(to (?P<target>[^)]+)\) (?P<user>\S+) on (?P<tty>\S+)"),
        "su_failure",
    ),
    (re.compile(r"^\(to (?P<target>[^)]+)\) (?P<user>\S+) on (?P<tty>\S+)"), "su_success"),
    (re.compile(r"^\+ (?P<tty>\S+) (?P<user>[^:\s]+):(?P<target>\S+)$"), "su_success"),
    (re.compile(r"^- (?P<tty>\S+) (?P<user>[^:\s]+):(?P<target>\S+)$"), "su_failure"),
    (re.compile(r"^'su (?P<target>\S+)' failed for (?P<user>\S+) on (?P<tty>\S+)"), "su_failure"),
]

# PAM services whose failures are about gaining privileges rather than logging in.
_PRIVILEGE_SERVICES = {"sudo", "sudo-i", "su", "su-l", "pkexec", "doas"}
_SYSTEM_SERVICES = {"cron", "systemd-user", "atd", "systemd"}


def _address_fields(match):
    fields = {}
    groups = match.groupdict()
    if groups.get("ip"):
        fields["src_ip"] = normalise_address(groups["ip"])
    if groups.get("port"):
        fields["port"] = int(groups["port"])
    return fields


def parse_sshd(message):
    for pattern, category, action in _SSHD:
        match = pattern.match(message)
        if match is None:
            continue
        groups = match.groupdict()
        fields = {"service": "sshd", **_address_fields(match)}
        if groups.get("user") is not None:
            fields["user"] = groups["user"]
        if groups.get("method"):
            fields["auth_method"] = groups["method"]
        if action == "invalid_user":
            fields["invalid_user"] = True
        elif "invalid" in groups:
            fields["invalid_user"] = bool(groups["invalid"])
        if groups.get("preauth"):
            fields["preauth"] = True
        if groups.get("key"):
            fields["key"] = groups["key"]
        for name in ("dst", "reason", "signal"):
            if groups.get(name):
                fields[name] = groups[name]
        if groups.get("dst_port"):
            fields["dst_port"] = int(groups["dst_port"])
        if groups.get("count"):
            fields["count"] = int(groups["count"])
        if groups.get("kv") is not None:
            fields.update(_pam_key_values(groups["kv"]))
        return category, action, fields
    if message.startswith("pam_"):
        return parse_pam(message)
    return SYSTEM, "log", {"service": "sshd"}


def _pam_key_values(text):
    """`logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.45  user=root` -> fields."""
    values = dict(_KEY_VALUE.findall(text))
    fields = {}
    if values.get("rhost"):
        fields["src_ip"] = normalise_address(values["rhost"])
    if values.get("user"):
        fields["user"] = values["user"]
    elif values.get("ruser"):
        fields["user"] = values["ruser"]
    if values.get("logname"):
        fields["logname"] = values["logname"]
    if values.get("tty"):
        fields["tty"] = values["tty"]
    return fields


def parse_pam(message):
    match = _PAM.match(message)
    if match is None:
        return None
    service = match.group("service")
    text = match.group("text")
    if service in _PRIVILEGE_SERVICES:
        category = AUTHORIZATION
    elif service in _SYSTEM_SERVICES:
        category = SYSTEM
    else:
        category = AUTHENTICATION
    fields = {"service": service, "pam_module": match.group("module")}
    if session := _PAM_SESSION.match(text):
        fields["user"] = session.group("user")
        if session.group("by"):
            fields["by_user"] = session.group("by")
        return category, f"session_{session.group('state')}", fields
    failures = re.match(r"^(?:(?P<count>\d+) more )?authentication failures?;(?P<kv>.*)$", text)
    if failures:
        fields.update(_pam_key_values(failures.group("kv")))
        if failures.group("count"):
            fields["count"] = int(failures.group("count"))
        return category, "pam_auth_failure", fields
    if text.startswith("check pass; user unknown"):
        return category, "pam_user_unknown", fields
    return category, "pam_other", fields


def parse_sudo(message):
    if message.startswith("pam_"):
        return parse_pam(message)
    match = _SUDO.match(message)
    if match is None:
        return AUTHORIZATION, "sudo_other", {"service": "sudo"}
    fields = {"service": "sudo", "user": match.group("user")}
    notes = []
    parts = match.group("body").split(" ; ")
    for index, part in enumerate(parts):
        key, sep, value = part.partition("=")
        if sep and key.isupper() and key.isalpha():
            if key == "COMMAND":
                # The command is last and may itself contain " ; ".
                fields["command"] = " ; ".join([value, *parts[index + 1 :]])
                break
            name = {"USER": "target_user", "TTY": "tty", "PWD": "pwd"}.get(key, key.lower())
            fields[name] = value
        else:
            notes.append(part.strip())
    action = "sudo_command"
    for note in notes:
        if attempts := _SUDO_ATTEMPTS.match(note):
            action = "sudo_auth_failure"
            fields["attempts"] = int(attempts.group("n"))
        elif note == "user NOT in sudoers" or note.startswith("user NOT authorized on host"):
            action = "sudo_not_in_sudoers"
        elif note == "command not allowed":
            action = "sudo_command_denied"
        elif note == "a password is required":
            action = "sudo_password_required"
        elif note:
            fields["note"] = note
            if action == "sudo_command":
                action = "sudo_other"
    if action == "sudo_command" and "command" not in fields:
        action = "sudo_other"
    return AUTHORIZATION, action, fields


def parse_su(message):
    if message.startswith("pam_"):
        return parse_pam(message)
    for pattern, action in _SU:
        if match := pattern.match(message):
            fields = {
                "service": "su",
                "user": match.group("user"),
                "target_user": match.group("target"),
            }
            if "tty" in match.groupdict():
                fields["tty"] = match.group("tty")
            return AUTHORIZATION, action, fields
    return AUTHORIZATION, "su_other", {"service": "su"}
