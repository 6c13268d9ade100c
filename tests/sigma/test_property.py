"""Property: the compiled rules give the same hits as the reference interpreter."""

import uuid

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from incidents.pipeline.parsers import parse_line
from incidents.sigma.compiler import views
from incidents.sigma.fields import record_values
from incidents.sigma.loading import Refused, read_rule
from tests.sigma.interpreter import condition_tree, evaluate

WORDS = st.sampled_from(["ro", "root", "ot", "admin", "a", "", "oracle", "web01", "ssh", "2"])
PATTERNS = st.builds(
    lambda parts: "".join(parts),
    st.lists(st.sampled_from(["r", "o", "t", "a", "*", "?", "dm", "in", "1", "\\*"]), max_size=5),
)
TEXT_FIELDS = st.sampled_from(["user", "host", "auth_method", "src_ip", "service", "tty"])


def _quote(text):
    return "'" + text.replace("'", "''") + "'"


def _string_item(field, modifiers, values):
    suffix = "".join(f"|{modifier}" for modifier in modifiers)
    listed = ", ".join(_quote(value) for value in values)
    return f"{field}{suffix}: [{listed}]"


STRING_ITEMS = st.builds(
    _string_item,
    TEXT_FIELDS,
    st.sampled_from(
        [
            (),
            ("contains",),
            ("startswith",),
            ("endswith",),
            ("contains", "all"),
            ("cased",),
            ("contains", "cased"),
            ("windash",),
        ]
    ),  # fmt: skip
    st.lists(st.one_of(WORDS, PATTERNS), min_size=1, max_size=3),
)
OTHER_ITEMS = st.one_of(
    st.builds(
        lambda op, n: f"port|{op}: {n}",
        st.sampled_from(["gt", "gte", "lt", "lte"]),
        st.integers(40000, 40010),
    ),  # fmt: skip
    st.builds(lambda n: f"port: {n}", st.integers(40000, 40003)),
    st.builds(
        lambda net: f"src_ip|cidr: {net}",
        st.sampled_from(["203.0.113.0/24", "10.0.0.0/8", "203.0.113.45/32"]),
    ),  # fmt: skip
    st.builds(lambda f, b: f"{f}|exists: {b}", TEXT_FIELDS, st.sampled_from(["true", "false"])),
    st.builds(lambda f: f"{f}: null", TEXT_FIELDS),
    st.builds(
        lambda f, p, i: f"{f}|re{'|i' if i else ''}: {_quote(p)}",
        TEXT_FIELDS,
        st.sampled_from(["^r", "t$", "o+", "[0-9]", "^$", "ROOT"]),
        st.booleans(),
    ),  # fmt: skip
    st.builds(lambda f, g: f"{f}|fieldref: {g}", TEXT_FIELDS, TEXT_FIELDS),
)
SELECTIONS = st.lists(st.one_of(STRING_ITEMS, OTHER_ITEMS), min_size=1, max_size=3)
KEYWORDS = st.lists(st.one_of(WORDS, PATTERNS).filter(bool), min_size=1, max_size=3)
CONDITIONS = st.sampled_from(
    ["a", "a and b", "a or b", "a and not b", "not a", "1 of them", "all of them",
     "(a or kw) and not b", "kw", "kw and a"]
)  # fmt: skip


def _rule(a, b, keywords, condition):
    def block(name, items):
        return f"  {name}:\n" + "".join(f"    {item}\n" for item in items)

    listed = ", ".join(_quote(word) for word in keywords)
    return (
        f"title: generated\nid: {uuid.uuid4()}\nlogsource: {{product: linux, service: sshd}}\n"
        f"detection:\n{block('a', a)}{block('b', b)}  kw: [{listed}]\n"
        f"  condition: {condition}\nlevel: low\n"
    )


LINES = st.builds(
    lambda user, ip, port, verb: (
        f"Mar 10 14:02:11 web01 sshd[811]: {verb} password for {user} from {ip} port {port} ssh2"
    ),
    st.sampled_from(["root", "admin", "oracle", "a", "Root", "ro*t", "x"]),
    st.sampled_from(["203.0.113.45", "10.1.2.3", "198.51.100.7"]),
    st.integers(40000, 40005),
    st.sampled_from(["Failed", "Accepted"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SELECTIONS, SELECTIONS, KEYWORDS, CONDITIONS, st.lists(LINES, min_size=1, max_size=4))
def test_compiled_rules_give_the_same_hits_as_the_reference_interpreter(
    a, b, keywords, condition, lines
):
    text = _rule(a, b, keywords, condition)
    try:
        rule = read_rule(text)
    except Refused:
        assume(False)
    tree = condition_tree(text)
    for line in lines:
        parsed = parse_line(line)
        values = record_values(parsed)
        compiled = rule.matcher(*views(values, parsed.raw))
        assert compiled == evaluate(tree, values, parsed.raw), (text, line)
