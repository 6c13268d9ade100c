"""The source hint of a received syslog message, from its app-name (RFC 5424) or tag
(RFC 3164).

    source_for("<38>Mar 10 14:02:11 web01 sshd[811]: Failed password ...")   # "sshd"
    source_for("<190>1 2025-03-10T14:02:11Z web01 nginx - - - 203.0.113.7 ...")  # "nginx"

The hint names the parser `incidents.pipeline.parse_line` tries first and becomes the
`source` of the raw log and of its security events, so it is one of a few fixed names
(`syslog` for everything else), never free text from the network. The syslog parser
itself picks the parser of the message body (from the app-name, then from the content),
so a wrong or missing hint costs a little time, never a wrong parse.
"""

import re

DEFAULT_SOURCE = "syslog"

# App-names and tags, lower-cased, to the source hint their messages get.
APP_SOURCES = {
    "sshd": "sshd",
    "sshd-session": "sshd",
    "sudo": "sudo",
    "su": "auth",
    "login": "auth",
    "passwd": "auth",
    "unix_chkpwd": "auth",
    "named": "named",
    "bind": "named",
    "bind9": "named",
    "nginx": "nginx",
    "apache": "apache",
    "apache2": "apache",
    "httpd": "apache",
}

_RFC5424_APP = re.compile(r"<\d{1,3}>[1-9]\d{0,2} \S+ \S+ (\S+) ")
_RFC3164_TAG = re.compile(
    r"(?:<\d{1,3}>)?"
    r"(?:[A-Za-z]{3} [ \d]?\d (?:\d{4} )?\d\d:\d\d:\d\d(?:\.\d+)?"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d\S*)"
    r" \S+ ([^\s:\[\]]{1,64})[\[:]"
)
_TAG_SUFFIX = re.compile(r"[-_.]")


def source_for(text):
    """The source hint for one message's text: a name of APP_SOURCES' values, or
    DEFAULT_SOURCE. `nginx_access` and `apache2-error` count as `nginx` and `apache2`."""
    match = _RFC5424_APP.match(text) if text.startswith("<") else None
    if match is None:
        match = _RFC3164_TAG.match(text)
        if match is None:
            return DEFAULT_SOURCE
    app = match.group(1).lower()
    source = APP_SOURCES.get(app)
    if source is None:
        source = APP_SOURCES.get(_TAG_SUFFIX.split(app, 1)[0], DEFAULT_SOURCE)
    return source
