"""The analysis engine: parsed lines in, security event drafts out.

    analyzer = Analyzer(load_rules(), BoundedState())
    for draft in analyzer.analyze(parse_line(line), source="auth.log"):
        ...  # store a SecurityEvent, publish security_event, raise an alert if severe

The analyzer owns no state (see `state.py`), so any number of processes can analyze lines
of the same attack and still fire each burst once.
"""

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from incidents.pipeline.parsers import ParsedLine
from incidents.pipeline.parsers.base import is_ip
from incidents.pipeline.rules import Rule, render, template_values
from incidents.pipeline.state import Check

# Fields copied from the line into a draft's `details` (the rest stays in raw_line).
DETAIL_FIELDS = (
    "host", "service", "src_ip", "port", "user", "target_user", "auth_method", "invalid_user",
    "method", "path", "status", "user_agent", "referer", "domain", "qtype", "command", "tty",
    "attempts", "dst",
)  # fmt: skip

DomainLookup = Callable[[str], dict | None]


@dataclass
class SecurityEventDraft:
    """A security event before it is stored. `to_event_data()` gives the `security_event`
    payload of threatlens-ws.md; the other attributes are for storage and alerting."""

    event_id: str | None
    severity: int
    category: str
    source: str
    message: str
    timestamp: datetime
    analysis: dict
    recommendations: list[str]
    rule_id: str
    correlation_key: str
    src_ip: str | None
    user: str | None
    raw_line: str
    alert_category: str = "suspicious"
    details: dict = field(default_factory=dict)

    def to_event_data(self):
        """The `security_event` data: exactly the fields threatlens-ws.md shows (plus the
        analysis explanation)."""
        return {
            "event_id": self.event_id,
            "severity": self.severity,
            "category": self.category,
            "source": self.source,
            "message": self.message,
            "timestamp": self.timestamp,
            "analysis": dict(self.analysis),
            "recommendations": list(self.recommendations),
        }


@dataclass(slots=True)
class _Plan:
    """A matching rule's line, between its check and its draft."""

    rule: Rule
    parsed: ParsedLine
    moment: datetime
    at: float
    values: dict
    listing: dict | None
    correlation_key: str
    check: Check


class Analyzer:
    """Applies rules to parsed lines.

    `state`: a `DetectionState` (BoundedState for ingest in one process, SharedState in
    Redis for several workers, MemoryState in tests), asked once per `analyze_many`.
    `clock`: returns an aware datetime; used for lines that carry no timestamp (default
    django.utils.timezone.now). `domain_lookup(domain) -> dict | None` answers whether a
    threat feed or RPZ rule lists a domain (e.g. `{"feed": "URLhaus", "rule": "evil.example"}`);
    without one, `listed` rules never fire. `new_event_id`: a callable to give drafts an id
    now (default: none; the stored model assigns it).
    """

    def __init__(self, rules, state, *, clock=None, domain_lookup=None, new_event_id=None):
        # May be given another list later (`incidents.processing` does, per chunk, when
        # the Sigma rules that replace built-in ones change): what derives from it follows.
        self.rules: list[Rule] = list(rules)
        self.by_id = {rule.id: rule for rule in self.rules}
        self.state = state
        self.clock = clock or _django_now
        self.domain_lookup: DomainLookup | None = domain_lookup
        self.new_event_id = new_event_id
        self._candidates_of, self._candidates_count = None, 0
        self._candidates_by, self._memories = {}, {}

    def analyze(self, parsed: ParsedLine, *, source=None, line=None) -> list[SecurityEventDraft]:
        """Drafts for every rule this line makes fire (often none). Malformed and unknown
        lines never fire. `line`: a stable id of the line (see `analyze_many`)."""
        return self.analyze_many([parsed], source=source, lines=[line])[0]

    def analyze_many(self, parsed_lines, *, source=None, lines=None):
        """The drafts of each line, in order (a list per line), as `analyze` line by line
        would give them, with one call to the state for all of them.

        Each line goes through three steps: what every matching rule would ask the state
        (a `Check`: remembered values, a look-back, a count, a claim) is worked out from
        the line alone; the state answers all the checks in order (`evaluate`: one round
        trip to a shared store per batch, not one per line); the rules that fired get
        their drafts. `lines`: a stable id per line (raw log and line number), which a
        shared state uses to count a line processed twice (after a crash) once.
        """
        plans, checks = [], []
        for position, parsed in enumerate(parsed_lines):
            if parsed.malformed or parsed.category == "unknown":
                continue
            moment = parsed.timestamp or self.clock()
            at = moment.timestamp()
            line = lines[position] if lines is not None else None
            for rule in self._candidates(parsed):
                if not rule.matches(parsed):
                    continue
                plan = self._plan(rule, parsed, moment, at, source, line)
                if plan is not None:
                    plans.append((position, plan))
                    checks.append(plan.check)
        results = [[] for _ in parsed_lines]
        if checks:
            for (position, plan), verdict in zip(plans, self.state.evaluate(checks), strict=True):
                if verdict.fired:
                    results[position].append(self._draft(plan, verdict))
        return results

    def _refresh(self):
        # What is derived from `rules`, computed again when the list changes.
        if self._candidates_of is not self.rules or self._candidates_count != len(self.rules):
            self._candidates_of, self._candidates_count = self.rules, len(self.rules)
            self._candidates_by = {}
            self._memories = {}
            self.by_id = {rule.id: rule for rule in self.rules}

    def _memory(self, rule):
        """How long a claim of `rule` matters: its hold, or the longest `within` of the
        rules that look back at it (`preceded_by`)."""
        self._refresh()
        memory = self._memories.get(rule.id)
        if memory is None:
            memory = rule.hold
            for other in self.rules:
                for preceded in getattr(other, "preceded_by", ()):
                    if preceded.rule == rule.id:
                        memory = max(memory, preceded.within)
            self._memories[rule.id] = memory
        return memory

    def _candidates(self, parsed):
        """The rules, in order, whose category, action and format allow this line
        (remembered per combination; recomputed when `rules` changes)."""
        self._refresh()
        combination = (parsed.category, parsed.action, parsed.format)
        rules = self._candidates_by.get(combination)
        if rules is None:
            rules = self._candidates_by[combination] = tuple(
                rule
                for rule in self.rules
                if not hasattr(rule, "may_match") or rule.may_match(*combination)
            )
        return rules

    def _plan(self, rule, parsed, moment, at, source, line):
        """What `rule` needs from the state for this line, or None when the line alone
        rules it out."""
        values = dict(parsed.fields)
        values.update(rule_id=rule.id, rule_name=rule.name, source=self._source(parsed, source))
        listing = None
        if rule.listed_field:
            domain = parsed.fields.get(rule.listed_field)
            listing = self.domain_lookup(domain) if (self.domain_lookup and domain) else None
            if not listing:
                return None
            values.update(feed=listing.get("feed"), list_rule=listing.get("rule"))

        first_seen = None
        if rule.first_seen:
            scope_value = parsed.fields.get(rule.first_seen.per)
            value = parsed.fields.get(rule.first_seen.value)
            if scope_value is None or value is None:
                return None
            first_seen = (f"{rule.id}:{scope_value}", value, rule.first_seen.remember)

        preceded = None
        if rule.preceded_by:
            # The enabled rules it looks back at, in order (none enabled: it cannot fire);
            # `by_id` is current: `_candidates` refreshed it for this line.
            preceded = tuple(
                (earlier.id, _bounded(render(earlier.correlation_key, values, clean=False)),
                 item.within)
                for item in rule.preceded_by
                if (earlier := self.by_id.get(item.rule)) is not None
            )  # fmt: skip

        threshold = None
        if rule.threshold:
            group = [parsed.fields.get(name) for name in rule.threshold.group_by]
            if any(value is None for value in group):
                return None
            key = ":".join([rule.id, *(str(value) for value in group)])
            threshold = (key, rule.threshold.window, rule.threshold.count)

        correlation_key = _bounded(render(rule.correlation_key, values, clean=False))
        # The claim both keeps a burst from firing again within its window and records when
        # the rule fired, which `preceded_by` rules read.
        check = Check(
            rule=rule.id,
            at=at,
            claim_key=f"fired:{correlation_key}",
            hold=rule.hold,
            memory=self._memory(rule),
            first_seen=first_seen,
            preceded=preceded,
            threshold=threshold,
            line=line,
        )
        return _Plan(rule, parsed, moment, at, values, listing, correlation_key, check)

    def _draft(self, plan, verdict):
        """The draft of a rule that fired."""
        rule, parsed, values = plan.rule, plan.parsed, plan.values
        details = {"rule_name": rule.name}
        if plan.listing is not None:
            details["listing"] = dict(plan.listing)
        if verdict.preceded is not None:
            index, fired_at = verdict.preceded
            earlier_id, key, _within = plan.check.preceded[index]
            details["preceded_by"] = {
                "rule_id": earlier_id,
                "correlation_key": key,
                "seconds_before": plan.at - fired_at,
            }
        if rule.threshold:
            count = verdict.count
            values.update(count=count, window=rule.threshold.window, threshold=rule.threshold.count)
            details.update(
                count=count, window=rule.threshold.window, threshold=rule.threshold.count
            )
        filled = template_values(values)  # cleaned once for every template of the rule
        for name in DETAIL_FIELDS:
            if parsed.fields.get(name) is not None:
                details.setdefault("fields", {})[name] = parsed.fields[name]
        analysis = {
            "threat_level": rule.threat_level,
            "confidence": rule.confidence,
            "explanation": rule.explanation.format_map(filled),
        }
        # As a Sigma rule's drafts: ATT&CK in both, for the technique filters; the Sigma
        # rule a replaced built-in now runs for (`incidents.sigma.replacing`).
        for name in ("attack", "sigma"):
            value = getattr(rule, name, None)
            if value:
                analysis[name] = value
                details[name] = value
        return SecurityEventDraft(
            event_id=self.new_event_id() if self.new_event_id else None,
            severity=rule.severity,
            category=rule.category,
            source=values["source"],
            message=rule.message.format_map(filled),
            timestamp=plan.moment,
            analysis=analysis,
            recommendations=[item.format_map(filled) for item in rule.recommendations],
            rule_id=rule.id,
            correlation_key=plan.correlation_key,
            # An address only (sshd with UseDNS logs host names): stores as an IP field.
            src_ip=parsed.fields["src_ip"] if is_ip(parsed.fields.get("src_ip")) else None,
            user=parsed.fields.get("user"),
            raw_line=parsed.raw,
            alert_category=rule.alert_category,
            details=details,
        )

    @staticmethod
    def _source(parsed, source):
        if source:
            return str(source)[:128]
        return str(parsed.fields.get("service") or parsed.fields.get("app") or parsed.format)


CORRELATION_KEY_LIMIT = 255


def _bounded(key):
    """Correlation keys fit the alert's 255-character column and hold printable text only.
    A key that does not keeps a cleaned start and ends in a hash of the exact key, so two
    different keys never become one."""
    if len(key) <= CORRELATION_KEY_LIMIT and key.isprintable():
        return key
    digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    start = "".join(char if char.isprintable() else "?" for char in key)
    return f"{start[: CORRELATION_KEY_LIMIT - 17]}~{digest}"


def uuid_event_id():
    """An event id for drafts published before they are stored (not the default)."""
    return str(uuid.uuid4())


def parent_domains(domain):
    """The domain and each parent with at least two labels, most specific first, for
    matching feed entries that list a parent: a.b.evil.example -> a.b.evil.example,
    b.evil.example, evil.example."""
    labels = domain.rstrip(".").lower().split(".")
    return [".".join(labels[index:]) for index in range(max(1, len(labels) - 1))]


def default_analyzer(*, domain_lookup=None):
    """The shipped rules over a fresh bounded state (ingest itself shares one state per
    process: `incidents.processing.build_analyzer`)."""
    from incidents.pipeline.rules import load_rules
    from incidents.pipeline.state import BoundedState

    return Analyzer(load_rules(), BoundedState(), domain_lookup=domain_lookup)


def _django_now():
    from django.utils import timezone

    return timezone.now()
