"""Detection rules: plain data (dicts, or a JSON file) checked and compiled into `Rule`s.

A rule is one dict. The shipped rules are in `rules_data.py`; an operator may load their own
with `load_rules_file(path)`. Keys:

    id                 unique, [a-z0-9_]
    name               short title
    description        optional, longer text
    enabled            optional, default true
    match              conditions on the parsed line (below)
    threshold          optional {"count": N, "window": seconds, "group_by": field or [fields]}:
                       fire when N matching lines share the group value within the window
    first_seen         optional {"value": field, "per": field, "remember": seconds}: fire when
                       the value (an address) is new for the per-field (a user) who has
                       history; the first value seen for a scope is the baseline
    preceded_by        optional [{"rule": id, "within": seconds}, ...]: fire only if one of
                       those rules fired for the same correlation key (rendered from this
                       line) within that many seconds before
    listed             optional {"field": "domain"}: fire only if the analyzer's domain lookup
                       (threat feeds, RPZ) lists the field's value
    cooldown           optional seconds: after firing, the same correlation key stays quiet
                       this long (threshold rules default to their window)
    severity           1-10
    category           the security event's category (authentication, web_attack...)
    alert_category     unified-ws.md SecurityEvent category: malware, phishing, suspicious,
                       policy_violation
    threat_level       low, medium, high, critical
    confidence         0.0-1.0
    message            template: the event's one-line message
    explanation        template: why this matters
    recommendations    list of templates
    correlation_key    template: groups repeats into one alert ("ssh_bruteforce_ip:{src_ip}")
    attack             optional MITRE ATT&CK tags as Sigma writes them ("attack.t1110.001",
                       "attack.credential-access"): the drafts' `attack` (techniques and
                       tactics), which the technique filters of events and alerts read

Templates are `str.format` strings over the line's fields plus `count`, `window`,
`threshold`, `rule_id`, `rule_name`, `source`, `feed`, `list_rule`. Only plain names are
allowed; a missing value renders as "-".

`match` holds `category`, `action`, `format` (a value or a list), `fields`
({name: {operator: operand}}), and the combinators `any` (list), `all` (list) and `not`.
Field operators: equals, not_equals, in, not_in, regex, contains_any (case-insensitive
substrings), exists (true/false), gt, gte, lt, lte, min_length.
"""

import json
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

THREAT_LEVELS = ("low", "medium", "high", "critical")
ALERT_CATEGORIES = ("malware", "phishing", "suspicious", "policy_violation")
_ID = re.compile(r"^[a-z0-9_]{1,64}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RULE_KEYS = {
    "id", "name", "description", "enabled", "match", "threshold", "first_seen", "preceded_by",
    "listed", "cooldown", "severity", "category", "alert_category", "threat_level",
    "confidence", "message", "explanation", "recommendations", "correlation_key", "attack",
}  # fmt: skip
_MATCH_KEYS = {"category", "action", "format", "fields", "any", "all", "not"}
TEMPLATE_VALUE_LIMIT = 200


class RuleError(ValueError):
    """A rule definition is invalid; the message names the rule and the problem."""


@dataclass(frozen=True)
class Threshold:
    count: int
    window: int
    group_by: tuple[str, ...]


@dataclass(frozen=True)
class FirstSeen:
    value: str
    per: str
    remember: int


@dataclass(frozen=True)
class Preceded:
    rule: str
    within: int


@dataclass(frozen=True)
class Rule:
    """One compiled detection rule (see the module docstring for the meaning of each key)."""

    id: str
    name: str
    description: str
    matcher: Callable
    severity: int
    category: str
    alert_category: str
    threat_level: str
    confidence: float
    message: str
    explanation: str
    recommendations: tuple[str, ...]
    correlation_key: str
    threshold: Threshold | None = None
    first_seen: FirstSeen | None = None
    preceded_by: tuple[Preceded, ...] = ()
    listed_field: str | None = None
    cooldown: int = 0
    enabled: bool = True
    # The match's top-level category, action and format values (None: any), so the
    # analyzer can skip rules that cannot match a line without calling the matcher.
    categories: frozenset | None = None
    actions: frozenset | None = None
    formats: frozenset | None = None
    # {"techniques": [...], "tactics": [...]} from the `attack` tags, or None.
    attack: dict | None = None
    # The Sigma rule this rule runs for (`incidents.sigma.replacing`): its attribution.
    sigma: dict | None = None

    def matches(self, parsed):
        return self.matcher(parsed)

    def may_match(self, category, action, format):
        """False when the line's category, action or format rules this rule out."""
        return (
            (self.categories is None or category in self.categories)
            and (self.actions is None or action in self.actions)
            and (self.formats is None or format in self.formats)
        )

    @property
    def hold(self):
        """Seconds the same correlation key stays quiet after this rule fires."""
        if self.cooldown:
            return self.cooldown
        return self.threshold.window if self.threshold else 0


def load_rules(specs=None):
    """Check and compile rule dicts (default: the shipped `rules_data.RULES`). Raises
    RuleError naming the first bad rule; disabled rules are checked but left out."""
    if specs is None:
        from incidents.pipeline.rules_data import RULES

        specs = RULES
    if not isinstance(specs, list | tuple):
        raise RuleError("rules must be a list of objects")
    rules, seen = [], set()
    for position, spec in enumerate(specs):
        rule = compile_rule(spec, position)
        if rule.id in seen:
            raise RuleError(f"rule {rule.id!r}: the id is used twice")
        seen.add(rule.id)
        rules.append(rule)
    ids = {rule.id for rule in rules}
    for rule in rules:
        for preceded in rule.preceded_by:
            if preceded.rule not in ids:
                raise RuleError(
                    f"rule {rule.id!r}: preceded_by names unknown rule {preceded.rule!r}"
                )
    return [rule for rule in rules if rule.enabled]


def load_rules_file(path):
    """Rules from a JSON file holding a list of rule objects."""
    try:
        specs = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleError(f"cannot read rules file {path}: {exc}") from exc
    except ValueError as exc:
        raise RuleError(f"rules file {path} is not valid JSON: {exc}") from exc
    return load_rules(specs)


def compile_rule(spec, position=0):
    if not isinstance(spec, dict):
        raise RuleError(f"rule #{position}: must be an object")
    rule_id = spec.get("id")
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        raise RuleError(f"rule #{position}: id must be 1-64 of [a-z0-9_], got {rule_id!r}")

    def fail(problem):
        raise RuleError(f"rule {rule_id!r}: {problem}")

    unknown = set(spec) - _RULE_KEYS
    if unknown:
        fail(f"unknown keys {sorted(unknown)}")
    for key in ("name", "match", "severity", "category", "threat_level", "confidence",
                "message", "explanation", "recommendations", "correlation_key"):  # fmt: skip
        if key not in spec:
            fail(f"{key} is required")
    severity = spec["severity"]
    if not isinstance(severity, int) or isinstance(severity, bool) or not 1 <= severity <= 10:
        fail("severity must be a whole number from 1 to 10")
    confidence = spec["confidence"]
    if not isinstance(confidence, int | float) or isinstance(confidence, bool):
        fail("confidence must be a number")
    if not 0 <= confidence <= 1:
        fail("confidence must be between 0 and 1")
    if spec["threat_level"] not in THREAT_LEVELS:
        fail(f"threat_level must be one of {', '.join(THREAT_LEVELS)}")
    alert_category = spec.get("alert_category", "suspicious")
    if alert_category not in ALERT_CATEGORIES:
        fail(f"alert_category must be one of {', '.join(ALERT_CATEGORIES)}")
    for key in ("name", "category", "message", "explanation", "correlation_key"):
        if not isinstance(spec[key], str) or not spec[key].strip():
            fail(f"{key} must be non-empty text")
    for key in ("message", "explanation", "correlation_key"):
        _check_template(spec[key], fail, key)
    recommendations = spec["recommendations"]
    if not isinstance(recommendations, list) or not all(
        isinstance(item, str) and item for item in recommendations
    ):
        fail("recommendations must be a list of text")
    for item in recommendations:
        _check_template(item, fail, "recommendations")
    cooldown = spec.get("cooldown", 0)
    if not isinstance(cooldown, int) or isinstance(cooldown, bool) or cooldown < 0:
        fail("cooldown must be a whole number of seconds, 0 or more")
    tags = spec.get("attack")
    if tags is not None and (
        not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags)
    ):
        fail('attack must be a list of tags such as "attack.t1110.001"')
    return Rule(
        id=rule_id,
        name=spec["name"],
        description=str(spec.get("description", "")),
        matcher=compile_match(spec["match"], fail),
        severity=severity,
        category=spec["category"],
        alert_category=alert_category,
        threat_level=spec["threat_level"],
        confidence=float(confidence),
        message=spec["message"],
        explanation=spec["explanation"],
        recommendations=tuple(recommendations),
        correlation_key=spec["correlation_key"],
        threshold=_threshold(spec.get("threshold"), fail),
        first_seen=_first_seen(spec.get("first_seen"), fail),
        preceded_by=_preceded(spec.get("preceded_by"), fail),
        listed_field=_listed(spec.get("listed"), fail),
        cooldown=cooldown,
        enabled=bool(spec.get("enabled", True)),
        categories=_top_level(spec["match"], "category"),
        actions=_top_level(spec["match"], "action"),
        formats=_top_level(spec["match"], "format"),
        attack=_attack(tags),
    )


def _attack(tags):
    if not tags:
        return None
    from incidents.sigma.attack import attack_of

    return attack_of(tags)


def _top_level(match, attribute):
    # compile_match has checked the value: text or a list of text.
    value = match.get(attribute)
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)


def _positive_int(value, fail, what):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        fail(f"{what} must be a whole number of at least 1")
    return value


def _field_name(value, fail, what):
    if not isinstance(value, str) or not _NAME.match(value):
        fail(f"{what} must be a field name")
    return value


def _threshold(spec, fail):
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) - {"count", "window", "group_by"}:
        fail("threshold takes count, window and group_by")
    group_by = spec.get("group_by")
    group_by = [group_by] if isinstance(group_by, str) else group_by
    if not group_by or not isinstance(group_by, list):
        fail("threshold.group_by must name a field or a list of fields")
    return Threshold(
        count=_positive_int(spec.get("count"), fail, "threshold.count"),
        window=_positive_int(spec.get("window"), fail, "threshold.window"),
        group_by=tuple(_field_name(name, fail, "threshold.group_by") for name in group_by),
    )


def _first_seen(spec, fail):
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) - {"value", "per", "remember"}:
        fail("first_seen takes value, per and remember")
    return FirstSeen(
        value=_field_name(spec.get("value"), fail, "first_seen.value"),
        per=_field_name(spec.get("per"), fail, "first_seen.per"),
        remember=_positive_int(spec.get("remember", 30 * 86400), fail, "first_seen.remember"),
    )


def _preceded(spec, fail):
    if spec is None:
        return ()
    if not isinstance(spec, list) or not spec:
        fail("preceded_by must be a non-empty list")
    items = []
    for item in spec:
        if not isinstance(item, dict) or set(item) - {"rule", "within"}:
            fail("each preceded_by entry takes rule and within")
        if not isinstance(item.get("rule"), str):
            fail("preceded_by.rule must be a rule id")
        items.append(
            Preceded(rule=item["rule"], within=_positive_int(item.get("within"), fail, "within"))
        )
    return tuple(items)


def _listed(spec, fail):
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) != {"field"}:
        fail('listed takes {"field": name}')
    return _field_name(spec["field"], fail, "listed.field")


def _check_template(template, fail, key):
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        fail(f"{key} is not a valid template: {exc}")
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not _NAME.match(name) or spec or conversion:
            fail(f"{key}: only plain {{names}} are allowed in templates, not {{{name}}}")


class _Values(dict):
    def __missing__(self, key):
        return "-"


def render(template, values, *, clean=True):
    """Fill a rule template. Values are shortened and stripped of control characters, since
    they come from logs an attacker can write to; `clean=False` keeps them exact (for
    correlation keys, which must not merge two different values)."""
    return template.format_map(template_values(values, clean=clean))


def template_values(values, *, clean=True):
    """The values `render` fills templates with; build them once to fill several
    templates of one line (`template.format_map(filled)`)."""
    filled = _Values()
    for key, value in values.items():
        if value is None or isinstance(value, dict | list):
            continue
        text = str(value)
        if not clean:
            filled[key] = text
            continue
        if not text.isprintable():
            text = "".join(char if char.isprintable() else "?" for char in text)
        if len(text) > TEMPLATE_VALUE_LIMIT:
            text = text[: TEMPLATE_VALUE_LIMIT - 1] + "…"
        filled[key] = text
    return filled


# -- match conditions ----------------------------------------------------------------------


def compile_match(spec, fail):
    """A predicate over ParsedLine for a `match` object."""
    if not isinstance(spec, dict):
        fail("match must be an object")
    unknown = set(spec) - _MATCH_KEYS
    if unknown:
        fail(f"match has unknown keys {sorted(unknown)}")
    checks = []
    for attribute in ("category", "action", "format"):
        if attribute in spec:
            allowed = _one_or_many(spec[attribute], fail, f"match.{attribute}")
            checks.append(lambda line, a=attribute, ok=allowed: getattr(line, a) in ok)
    fields = spec.get("fields", {})
    if not isinstance(fields, dict):
        fail("match.fields must be an object")
    for name, operators in fields.items():
        _field_name(name, fail, "match.fields key")
        if not isinstance(operators, dict) or not operators:
            fail(f"match.fields.{name} must be an object of operators")
        for operator, operand in operators.items():
            checks.append(_field_check(name, operator, operand, fail))
    if "any" in spec:
        if not isinstance(spec["any"], list) or not spec["any"]:
            fail("match.any must be a non-empty list")
        options = [compile_match(item, fail) for item in spec["any"]]
        checks.append(lambda line: any(option(line) for option in options))
    if "all" in spec:
        if not isinstance(spec["all"], list) or not spec["all"]:
            fail("match.all must be a non-empty list")
        parts = [compile_match(item, fail) for item in spec["all"]]
        checks.append(lambda line: all(part(line) for part in parts))
    if "not" in spec:
        negated = compile_match(spec["not"], fail)
        checks.append(lambda line: not negated(line))
    if not checks:
        fail("match must have at least one condition")
    return lambda line: all(check(line) for check in checks)


def _one_or_many(value, fail, what):
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        fail(f"{what} must be text or a list of text")
    return frozenset(values)


_MISSING = object()


def _field_check(name, operator, operand, fail):
    def value_of(line):
        return line.fields.get(name, _MISSING)

    def present(value):
        return value is not _MISSING and value is not None

    if operator == "equals":
        return lambda line: value_of(line) == operand
    if operator == "not_equals":
        return lambda line: value_of(line) != operand
    if operator in ("in", "not_in"):
        if not isinstance(operand, list):
            fail(f"match.fields.{name}.{operator} must be a list")
        members = frozenset(operand)
        if operator == "in":
            return lambda line: _hashable(value_of(line)) in members
        return lambda line: _hashable(value_of(line)) not in members
    if operator == "exists":
        if not isinstance(operand, bool):
            fail(f"match.fields.{name}.exists must be true or false")
        return lambda line: present(value_of(line)) == operand
    if operator == "regex":
        if not isinstance(operand, str):
            fail(f"match.fields.{name}.regex must be text")
        try:
            pattern = re.compile(operand)
        except re.error as exc:
            fail(f"match.fields.{name}.regex does not compile: {exc}")
        return lambda line: isinstance(value_of(line), str) and bool(pattern.search(value_of(line)))
    if operator == "contains_any":
        if not isinstance(operand, list) or not all(isinstance(item, str) for item in operand):
            fail(f"match.fields.{name}.contains_any must be a list of text")
        needles = [item.lower() for item in operand]
        return lambda line: (
            isinstance(value_of(line), str)
            and any(needle in value_of(line).lower() for needle in needles)
        )
    if operator in ("gt", "gte", "lt", "lte"):
        if not isinstance(operand, int | float) or isinstance(operand, bool):
            fail(f"match.fields.{name}.{operator} must be a number")
        compare = {
            "gt": lambda a: a > operand,
            "gte": lambda a: a >= operand,
            "lt": lambda a: a < operand,
            "lte": lambda a: a <= operand,
        }[operator]
        return lambda line: _is_number(value_of(line)) and compare(value_of(line))
    if operator == "min_length":
        _positive_int(operand, fail, f"match.fields.{name}.min_length")
        return lambda line: isinstance(value_of(line), str) and len(value_of(line)) >= operand
    return fail(f"match.fields.{name}: unknown operator {operator!r}")


def _hashable(value):
    try:
        hash(value)
    except TypeError:
        return None
    return value


def _is_number(value):
    return isinstance(value, int | float) and not isinstance(value, bool)
