"""Each modifier pySigma 2 applies, evaluated by the compiled rules, matching and not."""

from types import SimpleNamespace

import pytest

from incidents.sigma import compiler
from incidents.sigma.loading import Refused, read_rule
from tests.pipeline.helpers import T0, access, ssh_failure, syslog
from tests.sigma.helpers import matches, rule_yaml

FAILED = ssh_failure(T0, ip="203.0.113.45", user="root")
SUDO = syslog(
    T0, "sudo", "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/base64 -d x"
)


def web(path="/index.html", *, status=200, agent="curl/8.0", referer="-"):
    return access(T0, path=path, status=status, ua=agent, referer=referer)


def sshd(detection):
    return rule_yaml(detection)


def webrule(detection):
    return rule_yaml(detection, logsource="{category: webserver}")


@pytest.mark.parametrize(
    ("detection", "hit"),
    [
        ("sel: {user: root}\ncondition: sel", True),
        ("sel: {user: ROOT}\ncondition: sel", True),  # case-insensitive by default
        ("sel: {user: admin}\ncondition: sel", False),
        ("sel: {user|contains: oo}\ncondition: sel", True),
        ("sel: {user|startswith: ro}\ncondition: sel", True),
        ("sel: {user|startswith: oo}\ncondition: sel", False),
        ("sel: {user|endswith: ot}\ncondition: sel", True),
        ("sel: {user: 'r?o*'}\ncondition: sel", True),
        ("sel: {user: 'r?x*'}\ncondition: sel", False),
        ("sel: {user|contains|all: [ro, ot]}\ncondition: sel", True),
        ("sel: {user|contains|all: [ro, xx]}\ncondition: sel", False),
        ("sel: {user: [admin, root]}\ncondition: sel", True),
        ("sel: {user|re: '^r.+t$'}\ncondition: sel", True),
        ("sel: {user|re: '^R.+T$'}\ncondition: sel", False),  # re is case-sensitive
        ("sel: {user|re|i: '^R.+T$'}\ncondition: sel", True),
        ("sel: {src_ip|cidr: 203.0.113.0/24}\ncondition: sel", True),
        ("sel: {src_ip|cidr: 10.0.0.0/8}\ncondition: sel", False),
        ("sel: {port|gte: 51234}\ncondition: sel", True),
        ("sel: {port|gt: 51234}\ncondition: sel", False),
        ("sel: {port|lt: 60000}\ncondition: sel", True),
        ("sel: {port|lte: 100}\ncondition: sel", False),
        ("sel: {port: 51234}\ncondition: sel", True),
        ("sel: {port|neq: 51234}\ncondition: sel", False),
        ("sel: {port|neq: 22}\ncondition: sel", True),
        ("sel: {user|exists: true}\ncondition: sel", True),
        ("sel: {tty|exists: true}\ncondition: sel", False),
        ("sel: {tty|exists: false}\ncondition: sel", True),
        ("sel: {tty: null}\ncondition: sel", True),
        ("sel: {user: null}\ncondition: sel", False),
        ("sel: {user|cased: root}\ncondition: sel", True),
        ("sel: {user|cased: Root}\ncondition: sel", False),
        ("sel: {user|fieldref: user}\ncondition: sel", True),
        ("sel: {user|fieldref: host}\ncondition: sel", False),
        ("kw: ['Failed password']\ncondition: kw", True),
        ("kw: ['failed PASSWORD for root']\ncondition: kw", True),
        ("kw: ['Accepted publickey']\ncondition: kw", False),
        ("sel: {user: root}\nkw: [ssh2]\ncondition: sel and not kw", False),
        ("a: {user: root}\nb: {user: x}\ncondition: 1 of them", True),
        ("a: {user: root}\nb: {user: x}\ncondition: all of them", False),
    ],
)
def test_modifiers_on_an_sshd_line(detection, hit):
    assert matches(sshd(detection), FAILED) is hit


@pytest.mark.parametrize(
    ("detection", "hit"),
    [
        ("sel: {USER: root, COMMAND|contains: base64}\ncondition: sel", True),
        ("sel: {COMMAND|base64offset|contains: hello}\ncondition: sel", False),
        ("sel: {COMMAND|windash|contains: ' -q '}\ncondition: sel", False),
        # windash: a rule written with / also matches the - form, and the other way round.
        ("sel: {COMMAND|windash|contains: ' /d '}\ncondition: sel", True),
    ],
)
def test_sudo_fields_and_expansions(detection, hit):
    text = rule_yaml(detection, logsource="{product: linux, service: sudo}")
    assert matches(text, SUDO) is hit


def test_base64_modifier_matches_the_encoded_value():
    line = syslog(T0, "sudo", "bob : TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/echo aGVsbG8=")
    text = rule_yaml(
        "sel: {COMMAND|base64|contains: hello}\ncondition: sel",
        logsource="{product: linux, service: sudo}",
    )
    assert matches(text, line)


@pytest.mark.parametrize(
    ("detection", "line", "hit"),
    [
        ("sel: {cs-method: POST}\ncondition: sel", web(), False),
        ("sel: {cs-method: GET, sc-status: 200}\ncondition: sel", web(), True),
        ("sel: {sc-status: 404}\ncondition: sel", web(status=404), True),
        ("sel: {cs-uri-query|contains: union}\ncondition: sel", web("/a?id=1%20union"), True),
        ("sel: {cs-uri-stem: /a}\ncondition: sel", web("/a?id=1"), True),
        ("sel: {cs-uri-stem|endswith: .php}\ncondition: sel", web("/a?x=.php"), False),
        ("sel: {cs-user-agent|contains: 'sqlmap'}\ncondition: sel", web(agent="sqlmap/1.7"), True),
        # A `+` in the rule stands for a space, as in URL-encoded user agents.
        (
            "sel: {cs-user-agent: 'Mozilla/5.0+(evil)'}\ncondition: sel",
            web(agent="Mozilla/5.0 (evil)"),
            True,
        ),  # fmt: skip
        (
            "sel: {cs-user-agent: 'Mozilla/5.0 (evil)'}\ncondition: sel",
            web(agent="Mozilla/5.0+(evil)"),
            True,
        ),  # fmt: skip
        (
            "sel: {cs-referer|contains: evil}\ncondition: sel",
            web(referer="http://evil.test/"),
            True,
        ),
        ("sel: {c-ip|cidr: 198.51.100.0/24}\ncondition: sel", web(), True),
        ("kw: ['/index.html']\ncondition: kw", web(), True),
    ],
)
def test_webserver_fields(detection, line, hit):
    assert matches(webrule(detection), line) is hit


def test_dns_fields():
    line = (
        "10-Mar-2025 14:00:00.000 queries: info: client @0x7f 10.20.2.57#53211 "
        "(evil.example): query: evil.example IN TXT +E(0) (10.20.0.53)"
    )
    text = rule_yaml(
        "sel: {query|endswith: .example, record_type: TXT}\ncondition: sel",
        logsource="{category: dns}",
    )
    assert matches(text, line)


def test_a_rule_meets_only_lines_of_its_log_source():
    text = webrule("kw: ['Failed password']\ncondition: kw")
    assert not matches(text, FAILED)


@pytest.mark.parametrize(
    ("detection", "logsource", "code"),
    [
        (
            "sel: {CommandLine|contains: x}\ncondition: sel",
            "{product: linux, service: sshd}",
            "unmapped_field",
        ),  # fmt: skip
        (
            "sel: {Image|endswith: x}\ncondition: sel",
            "{product: windows, category: process_creation}",
            "unsupported_logsource",
        ),  # fmt: skip
        (
            "sel: {user|expand: '%admins%'}\ncondition: sel",
            "{product: linux, service: sshd}",
            "unsupported_modifier",
        ),  # fmt: skip
        (
            "sel: {port|minute: 5}\ncondition: sel",
            "{product: linux, service: sshd}",
            "unsupported_modifier",
        ),
        (
            "sel: {user|nosuchmodifier: x}\ncondition: sel",
            "{product: linux, service: sshd}",
            "invalid_rule",
        ),  # fmt: skip
        (
            "sel: {user: x}\ncondition: sel and nothere",
            "{product: linux, service: sshd}",
            "invalid_rule",
        ),  # fmt: skip
        (
            "sel: {user|re: '(unclosed'}\ncondition: sel",
            "{product: linux, service: sshd}",
            "invalid_rule",
        ),  # fmt: skip
    ],
)
def test_a_rule_is_refused_with_a_clear_reason(detection, logsource, code):
    with pytest.raises(Refused) as refused:
        read_rule(rule_yaml(detection, logsource=logsource))
    assert refused.value.code == code
    assert refused.value.reason


def test_yaml_that_is_not_a_rule_is_refused():
    for text, code in [
        ("title: [unclosed", "invalid_yaml"),
        ("- a\n- b\n", "invalid_rule"),
        (
            "title: x\nlogsource: {product: linux}\ndetection: {s: {a: b}, condition: s}\n",
            "missing_id",
        ),  # fmt: skip
        ("", "invalid_yaml"),
        # Plain YAML would keep the last `user` silently; pySigma's loader refuses it.
        (rule_yaml("sel:\n  user: a\n  user: b\ncondition: sel"), "invalid_yaml"),
    ]:
        with pytest.raises(Refused) as refused:
            read_rule(text)
        assert refused.value.code == code, text


def test_a_catastrophic_regex_on_a_crafted_line_runs_on_re2(monkeypatch):
    # (a+)+$ against "aaaa...b" takes Python's backtracking engine exponential time; RE2
    # runs in time linear in the line. Checked by which engine searches, not by a clock.
    searched = []
    compile_re2 = compiler.re2.compile

    def spying_compile(pattern, *args):
        compiled = compile_re2(pattern, *args)

        def search(text, *more):
            searched.append((pattern, text))
            return compiled.search(text, *more)

        return SimpleNamespace(search=search)

    monkeypatch.setattr(compiler.re2, "compile", spying_compile)
    line = syslog(T0, "sshd", "Invalid user " + "a" * 5000 + "! from 203.0.113.45 port 22")
    text = rule_yaml("sel: {user|re: '(a+)+$'}\ncondition: sel")
    assert not matches(text, line)
    assert any(pattern == "(a+)+$" and "a" * 5000 in text for pattern, text in searched)


def test_a_regex_re2_cannot_run_is_refused_by_pysigma():
    text = rule_yaml("sel: {user|re: '^(r)o\\1'}\ncondition: sel")  # a backreference
    with pytest.raises(Refused) as refused:
        read_rule(text)
    assert refused.value.code == "invalid_rule"
