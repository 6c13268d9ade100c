"""Sigma detections compiled to one Python function per rule.

pySigma parses a rule and builds its condition tree (AND, OR, NOT over field = value
leaves, each value a `SigmaString`, `SigmaRegularExpression`, `SigmaCIDRExpression`...,
with every modifier already applied). `compile_detection` turns that tree into the source
of a single Python expression, compiled once; evaluating a rule on a record is then one
call with no tree walking.

The compiled function is called as `match(R, L, T)`:

    R   the record's values as parsed (ints stay ints), for numbers, null, exists, cidr
    L   a lazy view of the values as lower-case text (Sigma strings are case-insensitive)
    T   a lazy view of the values as text, case kept (regular expressions, `|cased`)

`L[KEYWORDS]` and `T[KEYWORDS]` are the raw line, which keyword rules search.

Semantics (the reference interpreter in the tests implements the same, independently):
a string without wildcards equals the whole value; `*` and `?` are wildcards; a missing
field matches no string, number, regex, cidr or comparison; `null` matches a missing or
empty field; keywords are substrings of the raw line; a regular expression is searched
(not anchored) with the flags the rule gives.
"""

import ipaddress
import itertools
import re

import re2
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)

from incidents.sigma.fields import PLUS_AS_SPACE

KEYWORDS = "\x00raw"
# Constants of compiled rules get process-wide unique names, so the rules of one log
# source can share one function (`compile_route`).
_constant_names = itertools.count()
# OR-ed substrings of one field from this many on are searched with one regular expression.
NEEDLES_AS_REGEX = 3


class CompileError(ValueError):
    """A rule uses something we cannot evaluate. `code` is the machine-readable reason
    (`unsupported_modifier`, `unmapped_field`), the message says which part."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class LazyText(dict):
    """`view[name]`: the record's value as text (lower-cased when `lower`), None when the
    record lacks it; computed on first use and kept for the rest of the line."""

    __slots__ = ("lower", "raw", "values")

    def __init__(self, values, raw, lower):
        super().__init__()
        self.values = values
        self.raw = raw
        self.lower = lower

    def __missing__(self, name):
        value = self.raw if name == KEYWORDS else self.values.get(name)
        if value is not None:
            if value is True or value is False:
                value = "true" if value else "false"
            else:
                value = str(value)
            if self.lower:
                value = value.lower()
        self[name] = value
        return value


def views(values, raw):
    """(R, L, T) for one record."""
    return values, LazyText(values, raw, True), LazyText(values, raw, False)


def compile_detection(tree, *, known_fields=None, name="sigma_rule"):
    """A predicate `match(R, L, T) -> bool` for a pySigma condition tree (after the field
    mapping). `known_fields`: the fields a record of the rule's log source can have (None:
    any). Raises CompileError."""
    builder = _Builder(known_fields)
    expression = builder.expression(tree)
    source = f"def {name}(R, L, T):\n    return {expression}\n"
    namespace = dict(builder.constants)
    # Our own generated code: constants are passed by name, never pasted from the rule.
    exec(compile(source, f"<sigma {name}>", "exec"), namespace)
    function = namespace[name]
    function.source = source
    function.expression = expression
    function.constants = builder.constants
    return function


def compile_route(rules):
    """One function `route(R, L, T) -> [rule, ...]` testing every rule of a log source in
    turn: a single call per line instead of one per rule. `rules` have a `matcher` from
    `compile_detection` (whose constants have names unique in this process)."""
    namespace, lines = {}, ["def route(R, L, T):", "    hits = []"]
    for index, rule in enumerate(rules):
        namespace.update(rule.matcher.constants)
        namespace[f"_rule{index}"] = rule
        lines.append(f"    if {rule.matcher.expression}:")
        lines.append(f"        hits.append(_rule{index})")
    lines.append("    return hits")
    exec(compile("\n".join(lines) + "\n", "<sigma route>", "exec"), namespace)
    return namespace["route"]


class _Builder:
    def __init__(self, known_fields):
        self.known_fields = known_fields
        self.constants = {}

    def constant(self, value):
        name = f"_c{next(_constant_names)}"
        self.constants[name] = value
        return name

    def expression(self, node):
        if isinstance(node, ConditionAND):
            return "(" + " and ".join(self.expression(arg) for arg in node.args) + ")"
        if isinstance(node, ConditionOR):
            return self.disjunction(node.args)
        if isinstance(node, ConditionNOT):
            return f"(not {self.expression(node.args[0])})"
        if isinstance(node, ConditionFieldEqualsValueExpression):
            return self.leaf(self.field(node.field), node.value)
        if isinstance(node, ConditionValueExpression):
            return self.keyword(node.value)
        if node is None:
            return "False"
        raise CompileError("unsupported_condition", f"cannot evaluate {type(node).__name__}")

    def field(self, name):
        if self.known_fields is not None and name not in self.known_fields:
            raise CompileError(
                "unmapped_field",
                f"field {name!r} is not one our parsed records of this source have",
            )
        return name

    def disjunction(self, args):
        """OR, with plain equalities on one field folded into a set lookup and many
        substrings of one field into one regular expression."""
        equal, contained, affixed, rest = {}, {}, {}, []
        for arg in args:
            simple = _simple_string(arg)
            if simple is None:
                rest.append(arg)
            elif simple[1] == "equals":
                equal.setdefault(simple[0], []).append(simple[2])
            elif simple[1] == "contains":
                contained.setdefault(simple[0], []).append(simple[2])
            else:
                affixed.setdefault((simple[0], simple[1]), []).append(simple[2])
        parts = []
        for field, values in equal.items():
            view = self.view(field, cased=False)
            if len(values) == 1:
                parts.append(f"({view} == {values[0]!r})")
            else:
                parts.append(f"({view} in {self.constant(frozenset(values))})")
        for field, needles in contained.items():
            view = self.view(field, cased=False)
            if len(needles) >= NEEDLES_AS_REGEX:
                pattern = re.compile("|".join(re.escape(needle) for needle in needles), re.S)
                search = self.constant(pattern.search)
                parts.append(f"({search}({view} or '') is not None)")
            else:
                parts.extend(f"({needle!r} in ({view} or ''))" for needle in needles)
        for (field, kind), texts in affixed.items():
            # str.startswith/endswith take a tuple: one call for all of them.
            parts.append(f"({self.view(field, cased=False)} or '').{kind}({tuple(texts)!r})")
        parts.extend(self.expression(arg) for arg in rest)
        return "(" + " or ".join(parts) + ")" if parts else "False"

    def view(self, field, *, cased):
        return f"{'T' if cased else 'L'}[{field!r}]"

    def leaf(self, field, value):
        if isinstance(value, SigmaExpansion):
            return "(" + " or ".join(self.leaf(field, item) for item in value.values) + ")"
        if isinstance(value, SigmaString):
            return self.string(field, value)
        if isinstance(value, SigmaTimestampPart):
            raise CompileError(
                "unsupported_modifier", f"field {field!r}: timestamp parts are not supported"
            )
        if isinstance(value, SigmaBool):
            return f"({self.constant(_equals_bool)}(R.get({field!r}), {value.boolean!r}))"
        if isinstance(value, SigmaNumber):
            return f"({self.constant(_equals_number)}(R.get({field!r}), {value.number!r}))"
        if isinstance(value, SigmaNull):
            return f"(R.get({field!r}) in (None, ''))"
        if isinstance(value, SigmaExists):
            test = "is not None" if value.exists else "is None"
            return f"(R.get({field!r}) {test})"
        if isinstance(value, SigmaRegularExpression):
            search = self.constant(regex_search(value))
            return f"({search}(T[{field!r}]))"
        if isinstance(value, SigmaCIDRExpression):
            network = ipaddress.ip_network(value.cidr, strict=False)
            return f"({self.constant(_in_network(network))}(R.get({field!r})))"
        if isinstance(value, SigmaCompareExpression):
            compare = _comparison(value.op, value.number.number)
            return f"({self.constant(compare)}(R.get({field!r})))"
        if isinstance(value, SigmaFieldReference):
            other = self.field(value.field)
            mine, theirs = self.view(field, cased=False), self.view(other, cased=False)
            if value.starts_with:
                test = f"{mine}.startswith({theirs})"
            elif value.ends_with:
                test = f"{mine}.endswith({theirs})"
            else:
                test = f"{mine} == {theirs}"
            return f"({mine} is not None and {theirs} is not None and {test})"
        raise CompileError(
            "unsupported_modifier",
            f"field {field!r}: values of type {type(value).__name__} are not supported",
        )

    def keyword(self, value):
        if isinstance(value, SigmaExpansion):
            return "(" + " or ".join(self.keyword(item) for item in value.values) + ")"
        if not isinstance(value, SigmaString):
            raise CompileError(
                "unsupported_modifier", f"keyword of type {type(value).__name__} is not supported"
            )
        # A keyword is found anywhere in the raw line.
        if not value.startswith(SpecialChars.WILDCARD_MULTI):
            value = SpecialChars.WILDCARD_MULTI + value
        if not value.endswith(SpecialChars.WILDCARD_MULTI):
            value = value + SpecialChars.WILDCARD_MULTI
        return self.string(KEYWORDS, value)

    def string(self, field, value):
        if value.contains_placeholder():
            raise CompileError(
                "unsupported_modifier", f"field {field!r}: placeholders (|expand) are not supported"
            )
        cased = isinstance(value, SigmaCasedString)
        plus = field in PLUS_AS_SPACE
        parts = [
            _text(part, cased=cased, plus=plus) if isinstance(part, str) else part
            for part in value.s
        ]
        view = self.view(field, cased=cased)
        shape = _shape(parts)
        if shape is None:
            regex = re.compile(wildcard_regex(parts), re.S)
            return f"({self.constant(regex.fullmatch)}({view} or '') is not None)"
        kind, text = shape
        if kind == "any":
            return f"({view} is not None)"
        if kind == "equals":
            return f"({view} == {text!r})"
        if kind == "contains":
            return f"({text!r} in ({view} or ''))"
        if kind == "startswith":
            return f"({view} or '').startswith({text!r})"
        return f"({view} or '').endswith({text!r})"


def _text(part, *, cased, plus):
    if plus:
        part = part.replace("+", " ")
    return part if cased else part.lower()


def _shape(parts):
    """('equals'|'contains'|'startswith'|'endswith'|'any', text) for strings a plain
    string operation decides, None for those that need a regular expression."""
    star = SpecialChars.WILDCARD_MULTI
    if any(part is SpecialChars.WILDCARD_SINGLE for part in parts):
        return None
    if not parts:
        return ("equals", "")
    if all(part is star for part in parts):
        return ("any", "")
    leading, trailing = parts[0] is star, parts[-1] is star
    core = parts[1 if leading else 0 : len(parts) - (1 if trailing else 0)]
    if any(part is star for part in core):
        return None
    text = "".join(core)
    if leading and trailing:
        return ("contains", text)
    if leading:
        return ("endswith", text)
    if trailing:
        return ("startswith", text)
    return ("equals", text)


def wildcard_regex(parts):
    """A regular expression (to fullmatch) for string parts with wildcards."""
    pieces = []
    for part in parts:
        if part is SpecialChars.WILDCARD_MULTI:
            pieces.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            pieces.append(".")
        else:
            pieces.append(re.escape(part))
    return "".join(pieces)


def _simple_string(node):
    """(field, 'equals'|'contains'|'startswith'|'endswith', text) for a leaf that is a plain
    case-insensitive string test on a field, else None (for folding ORs)."""
    if not isinstance(node, ConditionFieldEqualsValueExpression):
        return None
    value = node.value
    if type(value) is not SigmaString or value.contains_placeholder():
        return None
    plus = node.field in PLUS_AS_SPACE
    parts = [_text(p, cased=False, plus=plus) if isinstance(p, str) else p for p in value.s]
    shape = _shape(parts)
    if shape is None or shape[0] == "any" or not shape[1]:
        return None
    return (node.field, shape[0], shape[1])


_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: (re.IGNORECASE, "i"),
    SigmaRegularExpressionFlag.MULTILINE: (re.MULTILINE, "m"),
    SigmaRegularExpressionFlag.DOTALL: (re.DOTALL, "s"),
}


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def regex_search(value):
    """A function text -> bool for a `|re` value (searched, not anchored).

    Rules come from third parties and lines from attackers: a pattern such as `(a+)+$`
    takes Python's backtracking engine exponential time on a crafted line. Patterns run on
    RE2 (linear time), which pySigma 2 already checks every pattern against (it refuses
    backreferences and lookarounds), so every rule it accepts compiles here.
    """
    inline = "".join(sorted(_FLAGS[flag][1] for flag in value.flags))
    source = value.regexp.original
    try:
        pattern = re2.compile(f"(?{inline}){source}" if inline else source, _RE2_OPTIONS)
    except re2.error as exc:
        raise CompileError("invalid_regex", f"regular expression does not compile: {exc}") from exc
    search = pattern.search
    # Each RE2 call pays a few microseconds of wrapping; empty values (most query strings)
    # skip it.
    on_empty = search("") is not None

    def matches(text):
        if not text:
            return on_empty and text is not None
        return search(text) is not None

    return matches


def _as_number(value):
    if value is None or value is True or value is False:
        return None
    if isinstance(value, int | float):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None


def _equals_number(value, number):
    found = _as_number(value)
    return found is not None and found == number


def _equals_bool(value, boolean):
    if isinstance(value, bool):
        return value is boolean
    if isinstance(value, str):
        return value.lower() == ("true" if boolean else "false")
    return False


def _comparison(op, number):
    test = {
        CompareOperators.LT: lambda found: found < number,
        CompareOperators.LTE: lambda found: found <= number,
        CompareOperators.GT: lambda found: found > number,
        CompareOperators.GTE: lambda found: found >= number,
        CompareOperators.NEQ: lambda found: found != number,
    }[op]

    def compare(value):
        found = _as_number(value)
        return found is not None and test(found)

    return compare


def _in_network(network):
    def contains(value):
        if value is None:
            return False
        try:
            return ipaddress.ip_address(str(value).split("%", 1)[0]) in network
        except ValueError:
            return False

    return contains
