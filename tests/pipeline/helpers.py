"""Pipeline test helpers: log lines written the way real daemons write them, and `Feed`, an
analyzer fed with text lines."""

from datetime import UTC, datetime, timedelta

from incidents.pipeline.analyzer import Analyzer
from incidents.pipeline.parsers import parse_line
from incidents.pipeline.rules import load_rules

T0 = datetime(2025, 3, 10, 14, 0, 0, tzinfo=UTC)


def at(seconds):
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def syslog(moment, app, message, *, host="web01", pid=4242):
    tag = f"{app}[{pid}]" if pid else app
    return f"{moment.isoformat(timespec='microseconds')} {host} {tag}: {message}"


def ssh_failure(moment, *, ip="203.0.113.45", user="root", port=51234):
    return syslog(moment, "sshd", f"Failed password for {user} from {ip} port {port} ssh2")


def ssh_success(moment, *, ip="10.20.1.15", user="alice", method="password", port=52144):
    return syslog(moment, "sshd", f"Accepted {method} for {user} from {ip} port {port} ssh2")


def ssh_invalid(moment, *, ip="203.0.113.45", user="admin", port=51234):
    return syslog(moment, "sshd", f"Invalid user {user} from {ip} port {port}")


FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0"


def access(
    moment, *, ip="198.51.100.77", method="GET", path="/", status=200, size=512, referer="-",
    ua=FIREFOX,
):  # fmt: skip
    stamp = moment.strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'{ip} - - [{stamp}] "{method} {path} HTTP/1.1" {status} {size} "{referer}" "{ua}"'


def bind_query(moment, *, ip="10.20.1.23", name="example.com", qtype="A"):
    stamp = moment.strftime("%d-%b-%Y %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return (
        f"{stamp} queries: info: client @0x7f3a2c1e4b60 {ip}#53211 ({name}): "
        f"query: {name} {'IN'} {qtype} +E(0)K (10.20.0.53)"
    )


class Feed:
    """An analyzer over a state, fed with text lines: `feed(line) -> rule ids fired`."""

    def __init__(self, state, *, domain_lookup=None, clock=None, rules=None):
        self.analyzer = Analyzer(
            rules if rules is not None else load_rules(), state, domain_lookup=domain_lookup,
            clock=clock,
        )  # fmt: skip
        self.drafts = []

    def __call__(self, line, source=None):
        drafts = self.analyzer.analyze(parse_line(line), source=source)
        self.drafts.extend(drafts)
        return [draft.rule_id for draft in drafts]

    def fired(self, rule_id):
        return [draft for draft in self.drafts if draft.rule_id == rule_id]
