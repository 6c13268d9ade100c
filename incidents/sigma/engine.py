"""Running the loaded Sigma rules on parsed lines: routing, matching, correlations.

    engine = SigmaEngine(parsed_rules, state)
    drafts = engine.analyze(parsed_line, source="auth.log")   # SecurityEventDraft list
    by_line = engine.analyze_many(parsed_lines, source=..., lines=[line ids])  # a chunk

Routing: a rule is indexed by its log source; a line's facets (`fields.facets`) select
the rules that apply, once per distinct facet set, so an access-log line never meets an
sshd rule.

A detection rule that matches makes a draft, at most one per rule and source address
(or user) per `SIGMA_COOLDOWN` seconds of event time, unless a correlation uses it and
none of those says `generate: true`: then it only feeds the correlation.

Cooldowns and correlations keep their state in the same `DetectionState` as the built-in
windows (the ingest's bounded store, `processing.detection_state()`: this process's, or
the one every worker shares in Redis), in tables of their own rule, as `Check`s answered
once per chunk (`analyze_many`: one script call to Redis, idempotent per line):

    event_count       a windowed counter per group (`Check.threshold`)
    value_count       a claim per group and value for the timespan (a value counts once per
                      window, `Check.distinct`), then a counter of the claims
    temporal          the event time each referenced rule last matched per group; fires
                      when all fall within the timespan (`Check.sequence`)
    temporal_ordered  the same, and the times are in the order the rules are listed

A correlation fires once per group per timespan (the check's claim). Conditions are checked
as events arrive, so only the ones that can be decided then are supported: gte, gt, eq.

A correlation that replaces a built-in rule (`threatlens-replaces`, `replacing.py`) is not
run here: `builtin_rules` gives the analyzer the built-in rules with it in their place.
Its detection rule stays quiet here unless another correlation generates.
"""

import logging
import math
import time
from dataclasses import dataclass

from incidents.pipeline.analyzer import DETAIL_FIELDS, SecurityEventDraft, _bounded
from incidents.pipeline.parsers.base import is_ip
from incidents.pipeline.state import Check
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

    def hit(self):
        """The rule matched a line (a detection rule) or fired (a correlation)."""
        self.hits += 1
        self.last_hit = time.time()


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
        # built-in rule id -> (correlation, its detection rule) that runs in its place
        self.replacing = {}
        used, generating = set(), set()
        for rule in rules:
            if rule.kind != "correlation":
                continue
            members = [by_reference.get(reference) for reference in rule.correlation.rules]
            if not members or any(member is None for member in members):
                logger.warning("sigma correlation %s: a referenced rule is not loaded", rule.title)
                continue
            used.update(member.sigma_id for member in members)
            if rule.correlation.generate:
                generating.update(member.sigma_id for member in members)
            if rule.replaces:
                if rule.replaces in self.replacing:
                    logger.warning(
                        "sigma correlation %s: built-in rule %s is already replaced by %s",
                        rule.title, rule.replaces, self.replacing[rule.replaces][0].title,
                    )  # fmt: skip
                else:
                    self.replacing[rule.replaces] = (rule, members[0])
                continue
            self.correlations.append((rule, members))
            for member in members:
                self.used_by.setdefault(member.sigma_id, []).append((rule, members))
        self.quiet = used - generating
        self._routes = {}
        self._lines = 0
        self._builtin = (None, None)  # (the built-in rules given, the rules to run)

    def __len__(self):
        return len(self.detections) + len(self.correlations) + len(self.replacing)

    def builtin_rules(self, rules):
        """`rules` (the compiled built-in rules, a tuple) with each one a loaded correlation
        replaces swapped for its replacement (`replacing.replacement_rule`); the same tuple
        object while neither changes, so the analyzer keeps what it derived from it."""
        given, result = self._builtin
        if given is rules:
            return result
        if not self.replacing:
            result = rules
        else:
            from incidents.sigma.replacing import replacement_rule

            replaced = []
            for rule in rules:
                correlation, member = self.replacing.get(rule.id, (None, None))
                if correlation is not None and rule.threshold is not None:
                    rule = replacement_rule(rule, correlation, member, attribution(correlation))
                replaced.append(rule)
            result = tuple(replaced)
        self._builtin = (rules, result)
        return result

    def count_replacement_firings(self, drafts):
        """Count as hits of their correlation the built-in analyzer's `drafts` raised by a
        correlation that replaces a built-in rule (it runs there, not here)."""
        for draft in drafts:
            sigma = draft.details.get("sigma")
            if sigma and sigma.get("kind") == "correlation":
                stats = self.stats.get(sigma.get("id"))
                if stats is not None:
                    stats.hit()

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

    def analyze(self, parsed, *, source=None, line=None):
        """Security event drafts for a parsed line (often none)."""
        return self.analyze_many([parsed], source=source, lines=[line])[0]

    def analyze_many(self, parsed_lines, *, source=None, lines=None, state=None, replay=False):
        """The drafts of each line, in order (a list per line), with one call to the state
        for all of them, as the built-in analyzer does (`Analyzer.analyze_many`): what each
        matching rule asks the state (a `Check`: a cooldown claim, a count, a sequence) is
        worked out from its line, the state answers them in order (one script call to a
        shared state in Redis), and the rules that fired get their drafts. `lines`: a
        stable id per line, which a shared state uses to count a line processed twice
        (after a crash) once. `state`: the built-in analyzer's, when it is not this
        engine's (a resumed raw log's own). `replay`: lines stored before a crash, analysed
        again only for the state to learn them: their hits and firings were counted
        then, not again."""
        state = self.state if state is None else state
        count = not replay
        plans, checks = [], []
        for position, parsed in enumerate(parsed_lines):
            hits = self.matching(parsed)
            if not hits:
                continue
            moment = parsed.timestamp or self.clock()
            at = moment.timestamp()
            values = record_values(parsed)
            line = lines[position] if lines is not None else None
            # Not the built-in rules' id: a shared state remembers the verdicts per line.
            line = None if line is None else f"{line}:sigma"
            for rule in hits:
                if count:
                    self.stats[rule.sigma_id].hit()
                if rule.sigma_id not in self.quiet:
                    key = f"sigma:{rule.sigma_id}:{_actor(values)}"
                    checks.append(
                        Check(
                            rule=_table(rule), at=at, claim_key=f"fired:{_bounded(key)}",
                            hold=self.cooldown, memory=self.cooldown, line=line,
                        )
                    )  # fmt: skip
                    plans.append((position, rule, parsed, values, moment, key, None))
                for correlation, members in self.used_by.get(rule.sigma_id, ()):
                    planned = _correlation_check(correlation, members, rule, values, at, line)
                    if planned is not None:
                        check, base, summary = planned
                        checks.append(check)
                        plans.append((position, correlation, parsed, values, moment, base, summary))
        results = [[] for _ in parsed_lines]
        if checks:
            for plan, verdict in zip(plans, state.evaluate(checks), strict=True):
                if not verdict.fired:
                    continue
                position, rule, parsed, values, moment, key, summary = plan
                extra = {}
                if summary is not None:
                    if count:
                        # A correlation's hit is its firing (a detection rule's, its match).
                        self.stats[rule.sigma_id].hit()
                    if verdict.count is not None:
                        summary = {
                            **summary,
                            "count": verdict.count,
                            "threshold": rule.correlation.count,
                        }
                    extra = {"correlation": summary}
                results[position].append(_draft(rule, parsed, values, moment, source, key, extra))
        return results


# -- correlations -----------------------------------------------------------------------


def _correlation_check(correlation, members, rule, values, at, line):
    """(check, key, summary) of what `correlation` asks the state when `rule`, one of
    its `members`, matched a line; None when the line lacks a group or value field."""
    spec = correlation.correlation
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
    distinct = threshold = sequence = None
    if spec.type in ("event_count", "value_count"):
        if spec.type == "value_count":
            value = values.get(our_field(rule.source_kind, spec.field))
            if value is None:
                return None
            # A value counts once per group per timespan.
            distinct = (f"value:{base}:{value}", spec.timespan)
        threshold = _threshold(base, spec)
    else:
        # Record when this member matched, then see whether all did within the span.
        sequence = (
            f"seen:{base}:{rule.sigma_id}",
            tuple(f"seen:{base}:{member.sigma_id}" for member in members),
            spec.timespan,
            spec.type == "temporal_ordered",
        )
        summary["rules"] = [member.title for member in members]
    check = Check(
        rule=_table(correlation), at=at, claim_key=f"fired:{_bounded(base)}",
        hold=spec.timespan, memory=spec.timespan, threshold=threshold, line=line,
        distinct=distinct, sequence=sequence,
    )  # fmt: skip
    return check, base, summary


# -- drafts -----------------------------------------------------------------------------------


def _draft(rule, parsed, values, moment, source, key, extra):
    sigma = attribution(rule)
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


def attribution(rule):
    """What a draft says of the Sigma rule that raised it (the Detection Rule License asks
    for the author and a link)."""
    return {
        "id": rule.sigma_id,
        "title": rule.title,
        "author": rule.author,
        "level": rule.level,
        "link": rule.references[0] if rule.references else "",
        "kind": rule.kind,
    }


def _within(wanted, offered):
    return wanted is None or wanted in offered


def _threshold(key, spec):
    """`Check.threshold` for a count condition: gte N, gt N (the next whole count), eq N."""
    if spec.operator == "gt":
        return (key, spec.timespan, math.floor(spec.count) + 1)
    if spec.operator == "eq":
        return (key, spec.timespan, spec.count, True)
    return (key, spec.timespan, spec.count)


def _table(rule):
    # The state's tables are per rule: DETECTION_STATE_MAX_KEYS keys for each Sigma rule.
    return f"sigma:{rule.sigma_id}"


def _actor(values):
    return values.get("src_ip") or values.get("user") or "-"


def _source(parsed, source):
    if source:
        return str(source)[:128]
    return str(parsed.fields.get("service") or parsed.fields.get("app") or parsed.format)


def _django_now():
    from django.utils import timezone

    return timezone.now()
