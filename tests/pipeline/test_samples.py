"""The shipped sample logs: they parse, they read in time order, and the analysis finds
the SSH brute force, the compromise that follows it, and the web scan."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from incidents.pipeline.analyzer import Analyzer, parent_domains
from incidents.pipeline.parsers import parse_line
from incidents.pipeline.rules import load_rules
from incidents.pipeline.samples import (
    SAMPLE_FILES,
    SAMPLE_THREAT_DOMAINS,
    SAMPLES_DIR,
    iter_sample_lines,
)
from incidents.pipeline.state import BoundedState, CacheState, MemoryState


def threat_feed(domain):
    for candidate in parent_domains(domain):
        if candidate in SAMPLE_THREAT_DOMAINS:
            return {"feed": "demo-feed", "rule": candidate, "action": "NXDOMAIN"}
    return None


def analyse(lines, state):
    analyzer = Analyzer(load_rules(), state, domain_lookup=threat_feed)
    drafts, parsed_lines = [], []
    for sample in lines:
        parsed = parse_line(sample.line, source_hint=sample.source_hint)
        parsed_lines.append(parsed)
        drafts += analyzer.analyze(parsed, source=sample.source)
    return parsed_lines, drafts


@pytest.fixture(scope="module")
def samples():
    return list(iter_sample_lines())


@pytest.fixture(scope="module", params=["memory", "cache", "bounded"])
def drafts(request, samples):
    """The sample hour analysed once per kind of state."""
    state = {
        "memory": MemoryState,
        "bounded": BoundedState,
        "cache": lambda: CacheState(prefix="samples-test"),
    }[request.param]()
    return analyse(samples, state)[1]


def test_samples_are_a_few_hundred_lines_over_about_an_hour(samples):
    assert 400 <= len(samples) <= 1000
    assert {sample.source for sample in samples} == set(SAMPLE_FILES)
    span = samples[-1].timestamp - samples[0].timestamp
    assert timedelta(minutes=50) <= span <= timedelta(minutes=61)


def test_samples_come_in_timestamp_order_across_files(samples):
    times = [sample.timestamp for sample in samples]
    assert times == sorted(times)
    assert samples[0].offset == 0 and samples[-1].offset == pytest.approx(
        (times[-1] - times[0]).total_seconds()
    )
    sources_in_first_minutes = {s.source for s in samples if s.offset < 400}
    assert len(sources_in_first_minutes) == 4  # interleaved, not file after file


def test_samples_parse_with_no_unknown_or_malformed_lines(samples):
    parsed = [parse_line(s.line, source_hint=s.source_hint) for s in samples]
    unknown = [p.raw for p in parsed if p.category == "unknown" or p.malformed]
    assert unknown == []
    assert all(p.timestamp is not None for p in parsed)
    categories = Counter(p.category for p in parsed)
    assert set(categories) == {"authentication", "authorization", "web", "dns", "system"}


def test_analysis_finds_the_brute_force_the_compromise_and_the_web_scan(drafts):
    by_rule = Counter(draft.rule_id for draft in drafts)

    (brute_force,) = [d for d in drafts if d.rule_id == "ssh_bruteforce_ip"]
    assert brute_force.src_ip == "203.0.113.45"
    assert by_rule["ssh_bruteforce_user"] == 1

    (compromise,) = [d for d in drafts if d.rule_id == "login_after_bruteforce"]
    assert (compromise.user, compromise.src_ip, compromise.severity) == (
        "backup",
        "203.0.113.45",
        9,
    )
    assert compromise.timestamp > brute_force.timestamp
    assert [d.user for d in drafts if d.rule_id == "login_new_address"] == ["backup"]

    scan = {d.rule_id for d in drafts if d.src_ip == "198.51.100.77"}
    assert scan >= {
        "web_scanner_user_agent", "web_404_burst", "web_path_traversal", "web_sql_injection",
        "web_sensitive_file_probe",
    }  # fmt: skip

    feed_hits = [d for d in drafts if d.rule_id == "dns_threat_feed_match"]
    assert {d.src_ip for d in feed_hits} == {"10.20.1.23", "10.20.2.57"}


def test_analysis_does_not_flood(drafts):
    assert len(drafts) < 30
    assert max(Counter(d.correlation_key for d in drafts).values()) == 1


def test_normal_activity_raises_nothing_severe(drafts):
    attackers = {"203.0.113.45", "198.51.100.77", "192.0.2.200", "10.20.1.23", "10.20.2.57"}
    severe_from_others = [
        d for d in drafts if d.severity >= 7 and d.src_ip not in attackers and d.user != "backup"
    ]
    assert severe_from_others == []


def test_rebased_replay_rewrites_every_line_and_finds_the_same(samples):
    start = datetime(2031, 6, 1, 9, 0, tzinfo=UTC)
    rebased = list(iter_sample_lines(rebase_to=start))
    assert len(rebased) == len(samples)
    assert rebased[0].timestamp == start
    for original, moved in zip(samples, rebased, strict=True):
        assert moved.offset == pytest.approx(original.offset)
        parsed = parse_line(moved.line, source_hint=moved.source_hint)
        # Each line's own text carries the new time (access and BIND lines to the second
        # or millisecond they are written with).
        assert abs((parsed.timestamp - moved.timestamp).total_seconds()) < 1, moved.line
        assert parsed.timestamp.year == 2031
    _, drafts = analyse(rebased, MemoryState())
    assert {"ssh_bruteforce_ip", "login_after_bruteforce", "web_sql_injection"} <= {
        d.rule_id for d in drafts
    }


def test_samples_directory_holds_the_files():
    for name in SAMPLE_FILES:
        assert (SAMPLES_DIR / name).is_file()
