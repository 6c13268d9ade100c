"""Reading one Sigma rule's YAML into something the engine runs, or a clear refusal.

    rule = read_rule(text)     # ParsedRule, or raises Refused(code, reason)

pySigma parses the rule (and so validates it: required keys, modifiers, condition
syntax, correlation shape), our field-mapping pipeline renames its fields, and
`compiler.compile_detection` builds its matcher. A correlation rule is parsed here; its
references to other rules are resolved by the engine, against the rules loaded with it.
"""

import dataclasses
import hashlib
from dataclasses import dataclass

import yaml
from sigma.correlations import SigmaCorrelationRule, SigmaCorrelationType
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule
from sigma.rule.base import SigmaYAMLLoader

from incidents.sigma.attack import attack_of
from incidents.sigma.compiler import CompileError, compile_detection
from incidents.sigma.fields import KNOWN_FIELDS, field_mapping_pipeline, logsource_kind

# Sigma levels to our 1-10 severity (7 and above raise an alert by default).
SEVERITY_OF_LEVEL = {"informational": 2, "low": 4, "medium": 6, "high": 8, "critical": 10}
CORRELATION_TYPES = {
    SigmaCorrelationType.EVENT_COUNT: "event_count",
    SigmaCorrelationType.VALUE_COUNT: "value_count",
    SigmaCorrelationType.TEMPORAL: "temporal",
    SigmaCorrelationType.TEMPORAL_ORDERED: "temporal_ordered",
}
MAX_RULE_BYTES = 256 * 1024
# Our own rule attributes (Sigma allows custom top-level keys; pySigma keeps them):
#   threatlens-replaces: <built-in rule id>   this correlation is that built-in rule's
#                                             detection (see `replacing.py`)
#   threatlens-default: disabled              a sync stores the rule disabled at first
REPLACES = "threatlens-replaces"
DEFAULT = "threatlens-default"


class Refused(ValueError):
    """The rule cannot run here. `code` is stable and machine-readable (see docs/sigma.md);
    the message is for people."""

    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class Correlation:
    """A correlation rule, its references not yet resolved."""

    type: str
    rules: list[str]
    group_by: list[str]
    timespan: int
    operator: str | None = None  # gte, gt, eq (event_count, value_count)
    count: float | None = None
    field: str | None = None  # value_count
    generate: bool = False
    aliases: dict = dataclasses.field(default_factory=dict)


@dataclass
class ParsedRule:
    """One rule as the engine runs it, and what is shown about it."""

    sigma_id: str
    name: str
    title: str
    kind: str  # detection | correlation
    level: str
    severity: int
    author: str
    description: str
    references: list[str]
    tags: list[str]
    attack: dict
    logsource: dict
    source_kind: str | None = None  # fields.WEBSERVER... (detections)
    matcher: object = None  # compiled predicate (detections)
    correlation: Correlation | None = None
    digest: str = ""
    # The id of the built-in rule this correlation replaces (REPLACES), or "".
    replaces: str = ""
    # Whether a sync (SIGMA_RULES_DIR, the shipped rules) stores it enabled at first.
    enabled_by_default: bool = True


def read_rule(text):
    """Parse, map and compile one rule's YAML. Raises Refused."""
    if not isinstance(text, str) or not text.strip():
        raise Refused("invalid_yaml", "the rule is empty")
    if len(text.encode("utf-8", "replace")) > MAX_RULE_BYTES:
        raise Refused("rule_too_large", f"a rule is at most {MAX_RULE_BYTES} bytes")
    try:
        # pySigma's own loader: safe, and refuses duplicate keys (which plain YAML would
        # resolve silently to the last one).
        documents = [doc for doc in yaml.load_all(text, SigmaYAMLLoader) if doc is not None]
    except yaml.YAMLError as exc:
        raise Refused("invalid_yaml", f"not valid YAML: {_first_line(exc)}") from exc
    if len(documents) != 1:
        raise Refused("one_rule_per_file", "give exactly one rule (one YAML document)")
    document = documents[0]
    if not isinstance(document, dict):
        raise Refused("invalid_rule", "a rule is a YAML mapping")
    if not document.get("id"):
        raise Refused("missing_id", "the rule needs an id (a UUID), which identifies it here")
    try:
        if "correlation" in document:
            return _correlation(SigmaCorrelationRule.from_dict(document), text)
        return _detection(SigmaRule.from_dict(document), text)
    except SigmaError as exc:
        raise Refused("invalid_rule", _first_line(exc)) from exc


def _common(rule, text, *, kind):
    level = rule.level.name.lower() if rule.level else "medium"
    tags = [str(tag) for tag in rule.tags or []]
    default = (rule.custom_attributes or {}).get(DEFAULT, "enabled")
    if default not in ("enabled", "disabled"):
        raise Refused("invalid_rule", f"{DEFAULT} is enabled or disabled, not {default!r}")
    return {
        "enabled_by_default": default == "enabled",
        "sigma_id": str(rule.id),
        "name": str(rule.name or ""),
        "title": str(rule.title or "")[:300],
        "kind": kind,
        "level": level,
        "severity": SEVERITY_OF_LEVEL.get(level, 6),
        "author": str(rule.author or "")[:300],
        "description": str(rule.description or ""),
        "references": [str(reference) for reference in rule.references or []],
        "tags": tags,
        "attack": attack_of(tags),
        "digest": hashlib.sha256(text.encode("utf-8", "replace")).hexdigest(),
    }


def _detection(rule, text):
    if (rule.custom_attributes or {}).get(REPLACES):
        raise Refused(
            "invalid_replacement",
            f"{REPLACES} belongs on an event_count correlation, not on a detection rule",
        )
    logsource = {
        key: value
        for key, value in (
            ("category", rule.logsource.category),
            ("product", rule.logsource.product),
            ("service", rule.logsource.service),
        )
        if value
    }
    kind = logsource_kind(rule.logsource)
    if kind is None:
        raise Refused(
            "unsupported_logsource",
            f"log source {logsource or '{}'} is not one ThreatLens reads "
            "(linux sshd/auth/sudo/su/syslog, webserver/apache/nginx, dns/bind, json)",
        )
    field_mapping_pipeline().apply(rule)
    try:
        trees = [condition.parsed for condition in rule.detection.parsed_condition]
    except SigmaError as exc:
        raise Refused("invalid_rule", _first_line(exc)) from exc
    from sigma.conditions import ConditionOR

    tree = trees[0] if len(trees) == 1 else ConditionOR(trees)
    try:
        matcher = compile_detection(tree, known_fields=KNOWN_FIELDS[kind])
    except CompileError as exc:
        raise Refused(exc.code, str(exc)) from exc
    return ParsedRule(
        **_common(rule, text, kind="detection"),
        logsource=logsource,
        source_kind=kind,
        matcher=matcher,
    )


def _correlation(rule, text):
    kind = CORRELATION_TYPES.get(rule.type)
    if kind is None:
        raise Refused(
            "unsupported_correlation",
            f"correlation type {rule.type.name.lower()} is not supported "
            "(event_count, value_count, temporal, temporal_ordered are)",
        )
    condition = rule.condition
    operator = count = value_field = None
    if kind in ("event_count", "value_count"):
        operator = condition.op.name.lower()
        if operator not in ("gte", "gt", "eq"):
            raise Refused(
                "unsupported_correlation",
                f"condition {operator} needs the end of each window; gte, gt and eq are supported",
            )
        count = condition.count
        if kind == "value_count":
            value_field = condition.fieldref
            if isinstance(value_field, list):
                if len(value_field) != 1:
                    raise Refused("unsupported_correlation", "value_count counts one field")
                value_field = value_field[0]
    elif rule.rules is None:
        raise Refused("unsupported_correlation", "extended temporal conditions are not supported")
    aliases = {}
    for alias in rule.aliases.aliases.values() if rule.aliases else ():
        aliases[alias.alias] = {str(ref.reference): name for ref, name in alias.mapping.items()}
    references = [str(reference.reference) for reference in rule.rules or []]
    replaces = (rule.custom_attributes or {}).get(REPLACES) or ""
    if replaces:
        from incidents.sigma.replacing import check_replacement

        check_replacement(replaces, kind, operator, references, aliases, list(rule.group_by or []))
    return ParsedRule(
        **_common(rule, text, kind="correlation"),
        logsource={},
        replaces=replaces,
        correlation=Correlation(
            type=kind,
            rules=references,
            group_by=list(rule.group_by or []),
            timespan=int(rule.timespan.seconds),
            operator=operator,
            count=count,
            field=value_field,
            generate=bool(rule.generate),
            aliases=aliases,
        ),
    )


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else type(exc).__name__
