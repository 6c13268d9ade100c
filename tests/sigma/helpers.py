"""Sigma test helpers: rule YAML factories and an engine over MemoryState."""

import textwrap
import uuid

from incidents.pipeline.parsers import parse_line
from incidents.pipeline.state import MemoryState
from incidents.sigma.engine import SigmaEngine
from incidents.sigma.loading import read_rule


def rule_yaml(detection, *, logsource="{product: linux, service: sshd}", level="high",
              title="Test rule", tags=("attack.t1110.001", "attack.credential-access"),
              rule_id=None, name=None, extra=""):  # fmt: skip
    """A detection rule's YAML; `detection` is the YAML body of `detection:`."""
    body = textwrap.indent(textwrap.dedent(detection).strip(), "  ")
    lines = [
        f"title: {title}",
        f"id: {rule_id or uuid.uuid4()}",
        *([f"name: {name}"] if name else []),
        "status: test",
        "author: ThreatLens tests",
        "references: [https://example.org/rules/test]",
        f"logsource: {logsource}",
        "detection:",
        body,
        f"level: {level}",
        f"tags: [{', '.join(tags)}]",
        extra,
    ]
    return "\n".join(lines) + "\n"


def correlation_yaml(body, *, title="Test correlation", level="high", rule_id=None):
    body = textwrap.indent(textwrap.dedent(body).strip(), "  ")
    return (
        f"title: {title}\nid: {rule_id or uuid.uuid4()}\nstatus: test\nauthor: ThreatLens tests\n"
        f"level: {level}\ntags: [attack.t1110]\ncorrelation:\n{body}\n"
    )


def matches(rule_text, line, *, hint=None):
    """Whether one rule matches one raw line."""
    rule = read_rule(rule_text)
    engine = SigmaEngine([rule], MemoryState())
    return bool(engine.matching(parse_line(line, source_hint=hint)))


def engine_of(*texts, cooldown=60):
    return SigmaEngine([read_rule(text) for text in texts], MemoryState(), cooldown=cooldown)
