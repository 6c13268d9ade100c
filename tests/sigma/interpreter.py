"""A reference Sigma interpreter, for tests only: walks pySigma's condition tree for every
record, written independently of `incidents.sigma.compiler` (regular expressions with
IGNORECASE instead of lower-casing, no folding of ORs), so the property test can show the
compiled rules give the same hits."""

import ipaddress
import re

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
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
    SpecialChars,
)

from incidents.sigma.fields import PLUS_AS_SPACE, field_mapping_pipeline


def condition_tree(text):
    rule = SigmaRule.from_yaml(text)
    field_mapping_pipeline().apply(rule)
    trees = [condition.parsed for condition in rule.detection.parsed_condition]
    return trees[0] if len(trees) == 1 else ConditionOR(trees)


def evaluate(node, values, raw):
    if isinstance(node, ConditionAND):
        return all(evaluate(arg, values, raw) for arg in node.args)
    if isinstance(node, ConditionOR):
        return any(evaluate(arg, values, raw) for arg in node.args)
    if isinstance(node, ConditionNOT):
        return not evaluate(node.args[0], values, raw)
    if isinstance(node, ConditionValueExpression):
        return _keyword(node.value, raw)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field(node.field, node.value, values)
    raise TypeError(node)


def _text(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _regex(sigma_string, *, plus=False):
    """The regular expression of a Sigma string with wildcards (case-insensitive unless
    |cased)."""
    out = []
    for part in sigma_string.s:
        if part is SpecialChars.WILDCARD_MULTI:
            out.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append(".")
        else:
            out.append(re.escape(part.replace("+", " ") if plus else part))
    flags = re.S if isinstance(sigma_string, SigmaCasedString) else re.S | re.I
    return re.compile("".join(out), flags)


def _keyword(value, raw):
    """Keywords are found anywhere in the raw line."""
    if isinstance(value, SigmaExpansion):
        return any(_keyword(item, raw) for item in value.values)
    return _regex(value).search(raw) is not None


def _number(value):
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _field(name, expected, values):
    found = values.get(name)
    if isinstance(expected, SigmaExpansion):
        return any(_field(name, item, values) for item in expected.values)
    if isinstance(expected, SigmaString):
        text = _text(found)
        return text is not None and bool(
            _regex(expected, plus=name in PLUS_AS_SPACE).fullmatch(text)
        )
    if isinstance(expected, SigmaBool):
        return _text(found) is not None and _text(found).lower() == str(expected.boolean).lower()
    if isinstance(expected, SigmaNumber):
        number = _number(found)
        return number is not None and number == float(expected.number)
    if isinstance(expected, SigmaNull):
        return found is None or found == ""
    if isinstance(expected, SigmaExists):
        return (found is not None) == expected.exists
    if isinstance(expected, SigmaRegularExpression):
        flags = 0
        if SigmaRegularExpressionFlag.IGNORECASE in expected.flags:
            flags |= re.I
        if SigmaRegularExpressionFlag.MULTILINE in expected.flags:
            flags |= re.M
        if SigmaRegularExpressionFlag.DOTALL in expected.flags:
            flags |= re.S
        text = _text(found)
        return text is not None and re.search(expected.regexp.original, text, flags) is not None
    if isinstance(expected, SigmaCIDRExpression):
        try:
            return ipaddress.ip_address(str(found)) in ipaddress.ip_network(expected.cidr)
        except ValueError:
            return False
    if isinstance(expected, SigmaCompareExpression):
        number = _number(found)
        if number is None:
            return False
        limit = float(expected.number.number)
        return {
            CompareOperators.LT: number < limit,
            CompareOperators.LTE: number <= limit,
            CompareOperators.GT: number > limit,
            CompareOperators.GTE: number >= limit,
            CompareOperators.NEQ: number != limit,
        }[expected.op]
    if isinstance(expected, SigmaFieldReference):
        mine, theirs = _text(found), _text(values.get(expected.field))
        if mine is None or theirs is None:
            return False
        mine, theirs = mine.lower(), theirs.lower()
        if expected.starts_with:
            return mine.startswith(theirs)
        if expected.ends_with:
            return mine.endswith(theirs)
        return mine == theirs
    raise TypeError(expected)
