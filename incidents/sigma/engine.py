"""Running the loaded Sigma rules on parsed lines: routing, matching, correlations.

    engine = SigmaEngine(parsed_rules, state)
    drafts = engine.analyze(parsed_line, source="auth.log")   # SecurityEventDraft list

Routing: a rule is indexed by its log source; a line's facets (`fields.facets`) select
the rules that apply, once per distinct facet set, so an access-log line never meets an
sshd rule.

A detection rule that matches makes a draft, at most one per rule and source address
(or user) per `SIGMA_COOLDOWN` seconds of event time, unless a correlation uses it and
none of those says `generate: true`: then it only feeds the correlation.

Correlations keep their state in the same `DetectionState` as the built-in windows
(the ingest's bounded store, `processing.detection_state()`: this process's, or the one
every worker shares in Redis, asked operation by operation):

    event_count       a windowed counter per group (`state.count`)
    value_count       a claim per group and value for the timespan (a value counts once per
                      window), then a counter of the claims
    temporal          the event time each referenced rule last matched per group; fires
                      when all fall within the timespan
    temporal_ordered  the same, and the times are in the order the rules are listed

A correlation fires once per group per timespan (`state.claim`). Conditions are checked
as events arrive, so only the ones that can be decided then are supported: gte, gt, eq.
"""

import logging
import time
from dataclasses import dataclass, field

from incidents.pipeline.analyzer import DETAIL_FIELDS, SecurityEventDraft, _bounded
from incidents.pipeline.parsers.base import is_ip
from incidents.sigma.compiler import compile_route, views
from incidents.sigma.fields import facets, our_field, record_values

logger = logging.getLogger(__name__)

THREAT_LEVEL = {"informational": "low", "low": "low", "medium": "medium", "high": "high",
                "critical": "critical"}  # fmt: skip
DEFAULT_COOLDOWN = 60


@dataclass
class RuleStats:
    """Cost and hits of one rule in this process."""

    hits: int = 0
    last_hit: float | None = None
    evaluations: int = 0
    seconds: float = 0.0


@dataclass
class _Route:
    detections: list = field(default_factory=list)


class SigmaEngine:
    """The loaded rules of one process (see the module docstring)."""

    # One line in this many is timed per rule, for the cost figures.
    TIMING_SAMPLE = 64

    def __init__(self, rules, state, *, cooldown=DEFAULT_COOLDOWN, clock=None):
        self.state = state
        self.cooldown = cooldown
        self.clock = clock or _django_now
        self.detections = [rule for rule in rules if rule.kind == "detection"]
        self.correlations = []
        self.stats = {rule.sigma_id: RuleStats() for rule in rules}
        by_reference = {}
        for rule in self.detections:
            by_reference[rule.sigma_id] = rule
            if rule.name:
                by_reference[rule.name] = rule
        # rule id -> correlations that use it; rules feeding only non-generating ones stay quiet
        self.used_by = {}
        generating = set()
        for rule in rules:
            if rule.kind != "correlation":
                continue
            members = [by_reference.get(reference) for reference in rule.correlation.rules]
            if not members or any(member is None for member in members):
                logger.warning("sigma correlation %s: a referenced rule is not loaded", rule.title)
                continue
            self.correlations.append((rule, members))
            for member in members:
                self.used_by.setdefault(member.sigma_id, []).append((rule, members))
                if rule.correlation.generate:
                    generating.add(member.sigma_id)
        self.quiet = {sigma_id for sigma_id in self.used_by if sigma_id not in generating}
        self._routes = {}
        self._lines = 0

    def __len__(self):
        return len(self.detections) + len(self.correlations)

    def rules_for(self, line_facets):
        """(rules, route): the detection rules whose log source the facets satisfy, and
        their combined function (`compiler.compile_route`); memoised per facet set."""
        route = self._routes.get(line_facets)
        if route is None:
            categories, products, services = line_facets
            rules = [
                rule
                for rule in self.detections
                if _within(rule.logsource.get("category"), categories)
                and _within(rule.logsource.get("product"), products)
                and _within(rule.logsource.get("service"), services)
            ]
            route = (rules, compile_route(rules) if rules else None)
            self._routes[line_facets] = route
        return route

    def matching(self, parsed):
        """The detection rules a parsed line matches (no state, no drafts)."""
        if parsed.malformed or parsed.category == "unknown":
            return []
        rules, route = self.rules_for(facets(parsed))
        if not rules:
            return []
        values = record_values(parsed)
        record, lower, text = views(values, parsed.raw)
        self._lines += 1
        if self._lines % self.TIMING_SAMPLE:
            return route(record, lower, text)
        hits = []
        for rule in rules:
            started = time.perf_counter()
            matched = rule.matcher(record, lower, text)
            stats = self.stats[rule.sigma_id]
            stats.evaluations += self.TIMING_SAMPLE
            stats.seconds += (time.perf_counter() - started) * self.TIMING_SAMPLE
            if matched:
                hits.append(rule)
        return hits

    def analyze(self, parsed, *, source=None):
        """Security event drafts for a parsed line (often none)."""
        hits = self.matching(parsed)
        if not hits:
            return []
        moment = parsed.timestamp or self.clock()
        at = moment.timestamp()
        values = record_values(parsed)
        drafts = []
        for rule in hits:
            stats = self.stats[rule.sigma_id]
            stats.hits += 1
            stats.last_hit = time.time()
            if rule.sigma_id not in self.quiet:
                key = f"sigma:{rule.sigma_id}:{_actor(values)}"
                if self.state.claim(f"fired:{_bounded(key)}", at, self.cooldown):
                    drafts.append(self._draft(rule, parsed, values, moment, source, key, {}))
            for correlation, members in self.used_by.get(rule.sigma_id, ()):
                draft = self._correlate(correlation, members, rule, parsed, values, moment, source)
                if draft is not None:
                    drafts.append(draft)
        return drafts

    # -- correlations -----------------------------------------------------------------------

    def _correlate(self, correlation, members, rule, parsed, values, moment, source):
        spec = correlation.correlation
        at = moment.timestamp()
        group = []
        for name in spec.group_by:
            alias = spec.aliases.get(name)
            sigma_name = (alias or {}).get(rule.sigma_id) or (alias or {}).get(rule.name) or name
            value = values.get(our_field(rule.source_kind, sigma_name))
            if value is None:
                return None
            group.append(str(value))
        base = ":".join(["sigma", correlation.sigma_id, *group])
        summary = {
            "type": spec.type,
            "timespan": spec.timespan,
            "group": dict(zip(spec.group_by, group, strict=True)),
        }
        details = {"correlation": summary}
        if spec.type in ("event_count", "value_count"):
            if spec.type == "value_count":
                value = values.get(our_field(rule.source_kind, spec.field))
                if value is None:
                    return None
                if not self.state.claim(f"value:{base}:{value}", at, spec.timespan):
                    return None
            count = self.state.count(base, at, spec.timespan)
            if not _holds(spec.operator, count, spec.count):
                return None
            details["correlation"].update(count=count, threshold=spec.count)
        else:
            # Record when this member matched, then see whether all did within the span.
            self.state.claim(f"seen:{base}:{rule.sigma_id}", at, 0)
            times = []
            for member in members:
                seen = self.state.last_claimed(f"seen:{base}:{member.sigma_id}")
                if seen is None or not 0 <= at - seen <= spec.timespan:
                    return None
                times.append(seen)
            if spec.type == "temporal_ordered" and times != sorted(times):
                return None
            details["correlation"]["rules"] = [member.title for member in members]
        if not self.state.claim(f"fired:{_bounded(base)}", at, spec.timespan):
            return None
        return self._draft(correlation, parsed, values, moment, source, base, details)

    # -- drafts -------------------------------------------------------------------------------

    def _draft(self, rule, parsed, values, moment, source, key, extra):
        sigma = {
            "id": rule.sigma_id,
            "title": rule.title,
            "author": rule.author,
            "level": rule.level,
            "link": rule.references[0] if rule.references else "",
            "kind": rule.kind,
        }
        details = {"rule_name": rule.title, "sigma": sigma, "attack": rule.attack, **extra}
        for name in DETAIL_FIELDS:
            if values.get(name) is not None:
                details.setdefault("fields", {})[name] = values[name]
        src_ip = values.get("src_ip")
        message = rule.title
        if src_ip:
            message = f"{rule.title} ({src_ip})"
        return SecurityEventDraft(
            event_id=None,
            severity=rule.severity,
            category="sigma",
            source=_source(parsed, source),
            message=message[:500],
            timestamp=moment,
            analysis={
                "threat_level": THREAT_LEVEL.get(rule.level, "medium"),
                "confidence": 0.7,
                "explanation": (rule.description or rule.title)[:2000],
                "attack": rule.attack,
                "sigma": sigma,
            },
            recommendations=[],
            rule_id=f"sigma:{rule.sigma_id}"[:64],
            correlation_key=_bounded(key),
            src_ip=src_ip if is_ip(src_ip) else None,
            user=values.get("user"),
            raw_line=parsed.raw,
            details=details,
        )


def _within(wanted, offered):
    return wanted is None or wanted in offered


def _holds(operator, count, threshold):
    if operator == "gt":
        return count > threshold
    if operator == "eq":
        return count == threshold
    return count >= threshold


def _actor(values):
    return values.get("src_ip") or values.get("user") or "-"


def _source(parsed, source):
    if source:
        return str(source)[:128]
    return str(parsed.fields.get("service") or parsed.fields.get("app") or parsed.format)


def _django_now():
    from django.utils import timezone

    return timezone.now()
