"""Sigma rule evaluation: records per CPU-second with a rule set of 100+ rules active.

    .venv/bin/python -m bench.sigma                 # default: 200,000 records, 120 rules
    .venv/bin/python -m bench.sigma --records 50000 --generated 200

The rule set is the project's own (incidents/sigma/rules/) plus generated rules of
SigmaHQ's shapes for our sources (keyword lists for linux/sshd, URI and user-agent
substring lists for webservers, query suffixes for DNS, sudo command fields), spread over
the sources. The records are the sample logs (incidents/pipeline/samples/), repeated.

Three figures, each in CPU seconds of this process (time.process_time):
  parse                parse_line alone (what the pipeline pays without any rules)
  match                the Sigma rules alone on parsed records (routing + compiled rules)
  analyze              the Sigma engine's analyze (match + correlations on MemoryState;
                       the shipped correlations that replace built-in rules run in the
                       analyzer instead, so they are not in this figure)
  built-in             the built-in analyzer on the same records, for comparison
No database and no cache server: this measures evaluation, not storage.
"""

import argparse
import os
import random
import re
import time
import uuid
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threatlens.settings")

import django

django.setup()

from incidents.pipeline.analyzer import Analyzer  # noqa: E402
from incidents.pipeline.parsers import parse_line  # noqa: E402
from incidents.pipeline.rules import load_rules  # noqa: E402
from incidents.pipeline.samples import iter_sample_lines  # noqa: E402
from incidents.pipeline.state import MemoryState  # noqa: E402
from incidents.sigma.engine import SigmaEngine  # noqa: E402
from incidents.sigma.loading import read_rule  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[1] / "incidents" / "sigma" / "rules"
WORDS = [
    "sqlmap",
    "nikto",
    "masscan",
    "zgrab",
    "nuclei",
    "wpscan",
    "hydra",
    "/etc/passwd",
    "/etc/shadow",
    "wget%20",
    "curl%20",
    "chmod%20777",
    "base64%20-d",
    "/dev/tcp/",
    "ncat",
    "python%20-c",
    "perl%20-e",
    "union%20select",
    "sleep(",
    "eval(",
    "system(",
    "cmd.exe",
    ".git/config",
    "wp-config.php.bak",
    "phpmyadmin",
    "cgi-bin/",
    "jndi:ldap",
    "jndi:rmi",
    "struts2",
    "/actuator/env",
    "/solr/admin",
    "/jenkins/script",
    "owa/auth",
    "autodiscover.xml",
    "xmrig",
    "minerd",
    "kinsing",
    "kdevtmpfsi",
    "tsunami",
    "mirai",
]


def _quote(text):
    return "'" + text.replace("'", "''") + "'"


def _listing(values):
    return "[" + ", ".join(_quote(value) for value in values) + "]"


def _alternatives(words):
    return "|".join(re.escape(word) for word in words)


def generated_rules(count, seed=7):
    """YAML texts of `count` rules of SigmaHQ's shapes, over our four sources."""
    rng = random.Random(seed)
    shapes = [
        lambda w: (
            "{product: linux}",
            f"  keywords: {_listing(w)}\n  condition: keywords",
        ),
        lambda w: (
            "{product: linux, service: sshd}",
            f"  keywords: {_listing(w)}\n  condition: keywords",
        ),
        lambda w: (
            "{category: webserver}",
            f"  selection:\n    cs-uri-query|contains: {_listing(w)}\n"
            "  filter:\n    sc-status: 404\n  condition: selection and not filter",
        ),
        lambda w: (
            "{category: webserver}",
            f"  selection:\n    cs-user-agent|contains: {_listing(w)}\n  condition: selection",
        ),
        lambda w: (
            "{category: webserver}",
            f"  selection:\n    cs-method: POST\n    cs-uri-stem|endswith: {_listing(w)}\n"
            "  condition: selection",
        ),
        lambda w: (
            "{category: dns}",
            f"  selection:\n    query|endswith: {_listing(['.' + x + '.example' for x in w])}\n"
            "  condition: selection",
        ),
        lambda w: (
            "{product: linux, service: sudo}",
            f"  selection:\n    USER: root\n    COMMAND|contains: {_listing(w)}\n"
            "  condition: selection",
        ),
        lambda w: (
            "{category: webserver}",
            f"  selection:\n    cs-uri-query|re: '(?i)({_alternatives(w)})=[^&]*\\.\\./'\n"
            "  condition: selection",
        ),
    ]
    texts = []
    for index in range(count):
        words = rng.sample(WORDS, rng.randint(2, 8))
        logsource, detection = shapes[index % len(shapes)](words)
        texts.append(
            f"title: generated {index}\nid: {uuid.UUID(int=rng.getrandbits(128), version=4)}\n"
            f"logsource: {logsource}\ndetection:\n{detection}\nlevel: medium\n"
            "tags: [attack.t1190]\n"
        )
    return texts


def rule_texts(generated, seed=7, *, shipped=True):
    """The shipped rules' YAML (incidents/sigma/rules/, unless `shipped` is false) and
    `generated` generated ones: the rule set this benchmark and `bench.ingest --sigma` run."""
    texts = [path.read_text() for path in sorted(SHIPPED.glob("*.yml"))] if shipped else []
    return texts + generated_rules(generated, seed)


def cpu(function):
    started = time.process_time()
    result = function()
    return time.process_time() - started, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--generated", type=int, default=113, help="generated rules (+ shipped)")
    args = parser.parse_args(argv)

    texts = rule_texts(args.generated)
    compile_seconds, rules = cpu(lambda: [read_rule(text) for text in texts])
    engine = SigmaEngine(rules, MemoryState())
    samples = [(s.line, s.source_hint) for s in iter_sample_lines()]
    lines = [samples[index % len(samples)] for index in range(args.records)]

    parse_seconds, parsed = cpu(
        lambda: [parse_line(line, source_hint=hint) for line, hint in lines]
    )
    match_seconds, hits = cpu(lambda: sum(len(engine.matching(record)) for record in parsed))
    fresh = SigmaEngine(rules, MemoryState())
    analyze_seconds, drafts = cpu(lambda: sum(len(fresh.analyze(record)) for record in parsed))
    builtin = Analyzer(load_rules(), MemoryState())
    builtin_seconds, _ = cpu(lambda: [builtin.analyze(record) for record in parsed])

    detections = sum(rule.kind == "detection" for rule in rules)
    print(f"rules: {len(rules)} ({detections} detections, {len(rules) - detections} correlations), "
          f"compiled in {compile_seconds:.2f} CPU s")  # fmt: skip
    print(f"records: {len(parsed):,} (sample logs repeated: {len(samples)} distinct lines)")
    for name, seconds, extra in (
        ("parse", parse_seconds, ""),
        ("match", match_seconds, f"  rule hits {hits:,}"),
        ("analyze", analyze_seconds, f"  drafts {drafts:,}"),
        ("built-in", builtin_seconds, "  (the built-in analyzer on the same records)"),
    ):
        print(f"{name:8} {len(parsed) / seconds:>12,.0f} records per CPU second{extra}")


if __name__ == "__main__":
    main()
