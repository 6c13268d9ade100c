"""Sigma cooldowns and correlations on the detection state: a chunk is one question to the
state (one script call in Redis), the answers are those of line-by-line analysis on the
in-process bounded state, and a chunk analysed again (after a crash) counts once."""

import random
import uuid

import pytest
from django.conf import settings

from incidents.pipeline.parsers import parse_line
from incidents.pipeline.state import BoundedState, MemoryState
from incidents.sigma.engine import SigmaEngine
from incidents.sigma.loading import read_rule
from tests.pipeline.helpers import at, ssh_failure, ssh_success
from tests.sigma.helpers import correlation_yaml, rule_yaml

FAILURE = rule_yaml(
    "sel: {action: login_failure}\ncondition: sel", name="failure", level="low", title="Failure"
)
SUCCESS = rule_yaml(
    "sel: {action: login_success}\ncondition: sel", name="success", level="high", title="Success"
)
ROOT = rule_yaml("sel: {user: root}\ncondition: sel", level="high", title="Root")
CORRELATIONS = [
    correlation_yaml(
        "type: event_count\nrules: [failure]\ngroup-by: [src_ip]\ntimespan: 5m\n"
        "condition: {gte: 5}",
        title="Burst",
    ),
    correlation_yaml(
        "type: event_count\nrules: [failure]\ngroup-by: [user]\ntimespan: 2m\ncondition: {gt: 2}",
        title="Account burst",
    ),
    correlation_yaml(
        "type: event_count\nrules: [failure]\ngroup-by: [src_ip, user]\ntimespan: 1m\n"
        "condition: {eq: 3}",
        title="Exactly three",
    ),
    correlation_yaml(
        "type: value_count\nrules: [failure]\ngroup-by: [src_ip]\ntimespan: 10m\n"
        "condition: {gte: 3, field: user}",
        title="Spray",
    ),
    correlation_yaml(
        "type: temporal_ordered\nrules: [failure, success]\ngroup-by: [src_ip]\ntimespan: 2m",
        title="Failure then success",
    ),
    correlation_yaml(
        "type: temporal\nrules: [failure, success]\ngroup-by: [src_ip]\ntimespan: 1m",
        title="Both",
    ),
]


def rules():
    return [read_rule(text) for text in (FAILURE, SUCCESS, ROOT, *CORRELATIONS)]


def attack_lines(count=600, seed=5):
    rng = random.Random(seed)
    addresses = [f"203.0.113.{n}" for n in range(1, 12)]
    users = ["root", "admin", "oracle", "alice", "backup"]
    lines, seconds = [], 0
    for _ in range(count):
        seconds += rng.choice((1, 2, 5, 20))
        moment = at(seconds)
        ip, user = rng.choice(addresses), rng.choice(users)
        if rng.random() < 0.15:
            lines.append(ssh_success(moment, ip=ip, user=user))
        else:
            lines.append(ssh_failure(moment, ip=ip, user=user))
    return [parse_line(line) for line in lines]


def drafts_of(engine, parsed, *, batch, ids=None, first=0):
    """(line number, rule, key, details) of each draft, analysed `batch` lines at a time."""
    found = []
    for start in range(0, len(parsed), batch):
        part = parsed[start : start + batch]
        lines = ids[start : start + batch] if ids else None
        by_line = engine.analyze_many(part, source="auth.log", lines=lines)
        for number, drafts in enumerate(by_line, start=first + start):
            found += [(number, d.rule_id, d.correlation_key, d.details) for d in drafts]
    return found


def line_ids(parsed):
    return [f"7.1:{index}" for index in range(len(parsed))]


def test_a_chunk_gives_what_line_by_line_analysis_gives():
    parsed = attack_lines()
    expected = drafts_of(SigmaEngine(rules(), BoundedState()), parsed, batch=1)
    titles = {details["rule_name"] for _n, _r, _k, details in expected}
    assert titles >= {"Burst", "Account burst", "Exactly three", "Spray", "Root"}
    assert titles >= {"Failure then success", "Both"}
    assert drafts_of(SigmaEngine(rules(), BoundedState()), parsed, batch=100) == expected
    assert drafts_of(SigmaEngine(rules(), MemoryState()), parsed, batch=100) == expected


def test_the_rules_have_tables_of_their_own_in_the_bounded_state():
    state = BoundedState()
    drafts_of(SigmaEngine(rules(), state), attack_lines(100), batch=50)
    tables = set(state.stats())
    assert tables and all(name.startswith("sigma:") for name in tables)


redis_only = pytest.mark.skipif(
    not settings.REDIS_URL, reason="the shared detection state needs Redis (REDIS_URL)"
)


@pytest.fixture
def shared_state():
    import redis

    from incidents.pipeline.shared_state import SharedState

    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = f"{settings.REDIS_KEY_PREFIX}-sigma-{uuid.uuid4().hex[:8]}"
    made = []

    def make():
        state = SharedState(client, prefix=prefix)
        made.append(state)
        return state

    yield make
    if made:
        made[0].clear()


@redis_only
def test_in_redis_a_chunk_is_one_script_call_with_the_same_answers(shared_state, monkeypatch):
    parsed = attack_lines()
    expected = drafts_of(SigmaEngine(rules(), BoundedState()), parsed, batch=1)
    state = shared_state()
    calls = []
    run = state._run

    def counted(mode, items):
        calls.append(mode)
        return run(mode, items)

    monkeypatch.setattr(state, "_run", counted)
    got = drafts_of(SigmaEngine(rules(), state), parsed, batch=100, ids=line_ids(parsed))
    assert got == expected
    assert calls == ["checks"] * 6  # 600 lines in chunks of 100


@redis_only
def test_in_redis_a_chunk_analysed_again_counts_once(shared_state):
    parsed = attack_lines(300)
    ids = line_ids(parsed)
    expected = drafts_of(SigmaEngine(rules(), shared_state()), parsed, batch=100, ids=ids)
    shared_state()  # the same keys: cleared when the test ends
    again = shared_state()
    again.clear()
    engine = SigmaEngine(rules(), again)
    first = drafts_of(engine, parsed[:200], batch=100, ids=ids[:200])
    # The process died before committing lines 100-199: they are analysed again, and
    # neither their counts nor their claims are taken twice.
    replayed = drafts_of(engine, parsed[100:200], batch=100, ids=ids[100:200], first=100)
    rest = drafts_of(engine, parsed[200:], batch=100, ids=ids[200:], first=200)
    assert replayed == [item for item in first if item[0] >= 100]
    assert first + rest == expected
