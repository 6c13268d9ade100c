"""Detection state on its own: counting windows, claims, remembered values."""

from incidents.pipeline.state import CacheState, MemoryState


def test_count_sums_the_window_and_forgets_older_buckets(state):
    assert [state.count("k", t, 60) for t in (0, 10, 20)] == [1, 2, 3]
    assert state.peek("k", 20, 60) == 3
    assert state.count("k", 65, 60) == 3  # bucket 0 (t=0) has left the 60 s window
    assert state.count("k", 200, 60) == 1
    assert state.count("other", 200, 60) == 1


def test_claim_holds_for_its_period_and_is_recorded(state):
    assert state.claim("fired:x", 1000, 300)
    assert not state.claim("fired:x", 1200, 300)
    assert state.last_claimed("fired:x") == 1000
    assert state.claim("fired:x", 1300, 300)
    assert state.last_claimed("fired:x") == 1300
    assert state.last_claimed("fired:never") is None


def test_claim_without_hold_always_succeeds_and_records(state):
    assert state.claim("k", 5, 0) and state.claim("k", 6, 0)
    assert state.last_claimed("k") == 6


def test_a_second_analyzer_process_sees_the_same_claims():
    # Two CacheState objects over the same cache stand for two processes.
    first, second = CacheState(), CacheState()
    assert first.claim("fired:burst", 100, 300)
    assert not second.claim("fired:burst", 101, 300)
    for t in range(5):
        first.count("n", t, 60)
    assert second.count("n", 6, 60) == 6


def test_remember_reports_known_scope_and_new_value(state):
    assert state.remember("alice", "10.0.0.1", 3600) == (False, True)
    assert state.remember("alice", "10.0.0.1", 3600) == (True, False)
    assert state.remember("alice", "10.0.0.2", 3600) == (True, True)
    assert state.remember("bob", "10.0.0.1", 3600) == (False, True)


def test_memory_state_expires_with_its_clock():
    now = [0.0]
    state = MemoryState(clock=lambda: now[0])
    state.remember("alice", "10.0.0.1", 100)
    now[0] = 101.0
    assert state.remember("alice", "10.0.0.1", 100) == (False, True)
