"""Detection state in Redis, shared by every process that processes lines.

`SharedState` is `BoundedState` (state.py) kept in Redis: the same tables of at most
`max_keys` keys per rule and kind, the stalest evicted first and counted, expiry by event
time only. What it adds:

- **One view for every worker.** Two processes that each get half of a brute force count
  it together, and the claim that makes a rule fire once per window is taken once.
- **One round trip per batch.** `evaluate(checks)` sends a chunk's checks to one Lua
  script (shared_state.lua) that answers them in order, atomically: the batches of two
  workers never interleave, so the same lines give the same detections as one process
  would, whatever the split (given the order in which the batches reach Redis).
- **Idempotent per line.** Counted windows keep the ids of the lines they counted
  (`<raw log id>.<received at>:<line number>`), and the verdicts given for a line are
  remembered (MEMO_TTL): a chunk processed again after a crash (its state written, its events not
  committed) gets the same verdicts and counts nothing twice, so its events are stored
  once, neither lost nor doubled.

The Sigma rules' cooldowns and correlations are `Check`s too (`distinct`, `sequence`,
an exact threshold), answered by the same script once per chunk. The single operations
(`count`, `claim`, ...) cost a round trip each and are not idempotent (no line id): tests
and tools.

Redis gone mid-way raises `redis.exceptions.RedisError` from `evaluate`: the chunk is not
committed and the raw log stays where it was (`incidents.processing`), to be resumed.
"""

import hashlib
import json
import threading
from importlib import resources

from incidents.pipeline.state import (
    CLAIM_MEMORY,
    DEFAULT_MAX_KEYS_PER_RULE,
    MAX_VALUES_PER_SCOPE,
    DetectionState,
    Verdict,
)

# How long the verdicts given for a line are kept: a raw log is resumed well within it.
MEMO_TTL = 2 * 24 * 3600
# `remember` without an event time never expires (as in BoundedState).
_NO_TIME = -1e300

# Longer keys and values (a user name is whatever the log line says) are stored as a hash:
# a hostile line must not make Redis hold kilobytes per key.
KEY_LIMIT = 256

_script_text = None
_script_lock = threading.Lock()


def _script_source():
    global _script_text
    with _script_lock:
        if _script_text is None:
            _script_text = (
                resources.files("incidents.pipeline").joinpath("shared_state.lua").read_text()
            )
        return _script_text


def _short(text):
    """`text`, or a digest of it (with its start) when longer than KEY_LIMIT."""
    text = str(text)
    if len(text) <= KEY_LIMIT:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{text[:64]}~{digest}"


class SharedState(DetectionState):
    """Detection state in Redis under `prefix` (see the module docstring).

    `client`: a `redis.Redis`. Thread-safe (redis-py's pool); one instance per process
    (`incidents.processing.detection_state`).
    """

    shared = True

    def __init__(
        self,
        client,
        *,
        prefix,
        max_keys=DEFAULT_MAX_KEYS_PER_RULE,
        max_values=MAX_VALUES_PER_SCOPE,
        memo_ttl=MEMO_TTL,
    ):
        self.client = client
        self.prefix = f"{prefix}.ds"
        self.max_keys = max(1, int(max_keys))
        self.max_values = max(1, int(max_values))
        self.memo_ttl = max(1, int(memo_ttl))
        self._script = client.register_script(_script_source())

    def __repr__(self):
        return f"<SharedState {self.prefix} max_keys={self.max_keys}>"

    def _run(self, mode, items):
        args = [self.prefix, self.max_keys, self.max_values, self.memo_ttl, mode]
        answer = self._script(keys=[], args=[*args, json.dumps(items, separators=(",", ":"))])
        return json.loads(answer)

    @staticmethod
    def _rule_of(key, rule):
        return rule if rule is not None else str(key).split(":", 1)[0]

    # -- a batch --------------------------------------------------------------------------------

    def evaluate(self, checks):
        items = []
        for check in checks:
            memo_key, field = "", ""
            if check.line is not None:
                memo_key, _, field = str(check.line).partition(":")
            items.append(
                [
                    memo_key,
                    field,
                    [
                        check.rule,
                        float(check.at),
                        _claim_key(check.claim_key),
                        float(check.hold),
                        float(check.memory),
                        _first_seen(check.first_seen),
                        [[rule, _short(key), within] for rule, key, within in check.preceded]
                        if check.preceded is not None
                        else None,
                        _threshold(check.threshold),
                        check.line,
                        [_claim_key(check.distinct[0]), float(check.distinct[1])]
                        if check.distinct is not None
                        else None,
                        _sequence(check.sequence),
                    ],
                ]
            )
        verdicts = []
        for fired, count, index, fired_at in self._run("checks", items) if items else []:
            if not fired:
                verdicts.append(Verdict(False))
                continue
            verdicts.append(
                Verdict(
                    True,
                    count if count >= 0 else None,
                    (index, float(fired_at)) if index >= 0 else None,
                )
            )
        return verdicts

    # -- one operation at a time --------------------------------------------------------------

    def count(self, key, at, window, *, rule=None):
        rule = self._rule_of(key, rule)
        return int(self._run("ops", [["count", _short(key), float(at), float(window), rule]])[0])

    def peek(self, key, at, window, *, rule=None):
        rule = self._rule_of(key, rule)
        return int(self._run("ops", [["peek", _short(key), float(at), float(window), rule]])[0])

    def claim(self, key, at, hold, *, rule=None, memory=None):
        rule = self._rule_of(key, rule)
        memory = CLAIM_MEMORY if memory is None else memory
        op = ["claim", _claim_key(key), float(at), float(hold), rule, float(memory)]
        return bool(self._run("ops", [op])[0])

    def last_claimed(self, key, *, rule=None):
        rule = self._rule_of(key, rule)
        value = self._run("ops", [["last_claimed", _claim_key(key), rule]])[0]
        return float(value) if value != "" else None

    def remember(self, scope, value, ttl, *, rule=None, at=None):
        rule = self._rule_of(scope, rule)
        when = _NO_TIME if at is None else float(at)
        op = ["remember", _short(scope), _short(value), float(ttl), rule, when]
        known, new = self._run("ops", [op])[0]
        return bool(known), bool(new)

    # -- what operators see ---------------------------------------------------------------------

    def stats(self):
        """Per rule, over every process: keys held, evictions, expired (as BoundedState)."""
        tables = [json.loads(item) for item in self.client.smembers(f"{self.prefix}:tables")]
        if not tables:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for kind, rule in tables:
            name = f"{self.prefix}:t:{kind}:{rule}"
            pipe.zcard(f"{name}:lru")
            pipe.hmget(f"{name}:meta", "evictions", "expired")
        answers = pipe.execute()
        totals = {}
        for (_kind, rule), keys, (evictions, expired) in zip(
            tables, answers[::2], answers[1::2], strict=True
        ):
            item = totals.setdefault(rule, {"keys": 0, "evictions": 0, "expired": 0})
            item["keys"] += int(keys)
            item["evictions"] += int(evictions or 0)
            item["expired"] += int(expired or 0)
        return totals

    def evictions(self):
        return sum(item["evictions"] for item in self.stats().values())

    def clear(self):
        """Forget the whole shared state (tests; every worker's windows go)."""
        for key in self.client.scan_iter(match=f"{self.prefix}:*", count=1000):
            self.client.delete(key)


def _claim_key(key):
    # "fired:<correlation key>": shortened after the prefix, as the look-backs name it.
    key = str(key)
    return "fired:" + _short(key[6:]) if key.startswith("fired:") else _short(key)


def _first_seen(first_seen):
    if first_seen is None:
        return None
    scope, value, ttl = first_seen
    return [_short(scope), _short(value), ttl]


def _threshold(threshold):
    if threshold is None:
        return None
    key, window, count, *exact = threshold
    return [_short(key), window, count, bool(exact and exact[0])]


def _sequence(sequence):
    if sequence is None:
        return None
    key, members, span, ordered = sequence
    return [_claim_key(key), [_claim_key(member) for member in members], float(span), ordered]
