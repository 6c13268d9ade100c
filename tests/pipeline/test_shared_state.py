"""The detection state shared in Redis answers as the in-process BoundedState does, for
every worker at once, and a line analysed twice (a chunk processed again after a crash)
counts and fires once."""

import uuid

import pytest
from django.conf import settings

from incidents.pipeline.analyzer import Analyzer
from incidents.pipeline.parsers import parse_line
from incidents.pipeline.rules import load_rules
from incidents.pipeline.state import BoundedState
from tests.ingest.test_detection_state import sample_and_attack_lines

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL, reason="the shared detection state needs Redis (REDIS_URL)"
)


@pytest.fixture
def shared_state():
    """shared_state(**options) -> a SharedState under a prefix of its own (deleted after);
    two calls give two "processes" over the same Redis keys."""
    import redis

    from incidents.pipeline.shared_state import SharedState

    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = f"{settings.REDIS_KEY_PREFIX}-state-{uuid.uuid4().hex[:8]}"
    made = []

    def make(**options):
        state = SharedState(client, prefix=prefix, **options)
        made.append(state)
        return state

    yield make
    if made:
        made[0].clear()


def detections(state, lines, *, batch, offset=0):
    analyzer = Analyzer(load_rules(), state)
    found = []
    for start in range(0, len(lines), batch):
        part = lines[start : start + batch]
        by_line = analyzer.analyze_many(
            [parse_line(line, source_hint=source) for source, line in part],
            source="mix",
            lines=[f"1:{offset + start + n}" for n in range(len(part))],
        )
        found += [
            (d.rule_id, d.correlation_key, d.timestamp, d.message, d.details)
            for drafts in by_line
            for d in drafts
        ]
    return found


def test_the_shared_state_detects_what_the_bounded_state_detects(shared_state):
    lines = sample_and_attack_lines()
    expected = detections(BoundedState(), lines, batch=1)
    assert len(expected) > 200
    assert detections(shared_state(), lines, batch=500) == expected


def test_a_small_shared_table_evicts_as_the_bounded_state_does(shared_state):
    lines = sample_and_attack_lines()
    bounded = BoundedState(max_keys=5)
    expected = detections(bounded, lines, batch=1)
    shared = shared_state(max_keys=5)
    assert detections(shared, lines, batch=200) == expected
    assert shared.stats()["ssh_bruteforce_ip"] == {
        "keys": bounded.stats()["ssh_bruteforce_ip"]["keys"],
        "evictions": bounded.stats()["ssh_bruteforce_ip"]["evictions"],
        "expired": bounded.stats()["ssh_bruteforce_ip"]["expired"],
    }
    assert shared.evictions() == bounded.evictions()


def test_lines_analysed_again_get_the_same_verdicts_and_count_once(shared_state):
    lines = sample_and_attack_lines()
    state = shared_state()
    first = detections(state, lines, batch=300)
    keys = state.stats()
    # The same lines again (a crash between the state's answer and the commit).
    assert detections(state, lines, batch=70) == first
    assert state.stats() == keys


def failures(count, start=0):
    return [
        ("auth.log", f"Mar 10 14:02:{n:02d} web01 sshd[811]: Failed password for root from "
         f"203.0.113.77 port {40000 + n} ssh2")
        for n in range(start, start + count)
    ]  # fmt: skip


def test_two_processes_splitting_a_brute_force_fire_it_once(shared_state):
    one, two = shared_state(), shared_state()
    attack = failures(12)
    fired = []
    for n, line in enumerate(attack):
        state = one if n % 2 == 0 else two
        fired += detections(state, [line], batch=1, offset=n)
    assert sorted(item[1] for item in fired) == [
        "ssh_bruteforce_ip:203.0.113.77",
        "ssh_bruteforce_user:root",
    ]
    # Separate in-process states see six failures each: nothing.
    halves = [detections(BoundedState(), attack[k::2], batch=1) for k in (0, 1)]
    assert halves == [[], []]


def test_single_operations_answer_as_the_bounded_state(shared_state):
    state = shared_state(max_keys=2)
    for ip in ("a", "b"):
        state.count(ip, 100, 300, rule="ssh_bruteforce_ip")
    assert state.count("a", 101, 300, rule="ssh_bruteforce_ip") == 2
    state.count("c", 102, 300, rule="ssh_bruteforce_ip")  # b goes
    assert state.peek("a", 102, 300, rule="ssh_bruteforce_ip") == 2
    assert state.peek("b", 102, 300, rule="ssh_bruteforce_ip") == 0
    assert state.stats()["ssh_bruteforce_ip"] == {"keys": 2, "evictions": 1, "expired": 0}
    assert state.claim("fired:x", 1000.25, 60, rule="r")
    assert not state.claim("fired:x", 1030, 60, rule="r")
    assert state.last_claimed("fired:x", rule="r") == 1000.25
    assert state.remember("u", "1.2.3.4", 600, rule="f", at=10) == (False, True)
    assert state.remember("u", "1.2.3.4", 600, rule="f", at=20) == (True, False)
    assert state.remember("u", "5.6.7.8", 600, rule="f", at=30) == (True, True)


def test_a_hostile_long_key_is_stored_as_a_digest(shared_state):
    state = shared_state()
    user = "A" * 20_000  # a log line may say anything
    assert state.count(f"ssh_bruteforce_user:{user}", 1, 600, rule="ssh_bruteforce_user") == 1
    assert state.count(f"ssh_bruteforce_user:{user}", 2, 600, rule="ssh_bruteforce_user") == 2
    assert state.count(f"ssh_bruteforce_user:{user}B", 3, 600, rule="ssh_bruteforce_user") == 1
    assert state.remember(f"f:{user}", user, 600, rule="f", at=1) == (False, True)
    assert state.remember(f"f:{user}", user, 600, rule="f", at=2) == (True, False)
    longest = max(len(key) for key in state.client.scan_iter(match=f"{state.prefix}:*"))
    assert longest < 500
    members = state.client.zrange(f"{state.prefix}:t:n:ssh_bruteforce_user:lru", 0, -1)
    assert max(len(member) for member in members) < 500
