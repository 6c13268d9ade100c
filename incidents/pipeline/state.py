"""Detection state: sliding-window counters, fire-once claims, remembered values.

The analyzer keeps no state of its own; it asks a `DetectionState`:

- `BoundedState` (what ingest uses in one process) keeps it in this process's memory,
  bounded on purpose: a configured number of keys per rule, the stalest evicted first,
  each eviction counted, expiry by event time only. The same lines give the same
  detections whatever the batch boundaries and whatever the Django cache holds.
- `SharedState` (`shared_state.py`, what ingest uses with REDIS_URL) is the same in
  Redis, shared by every worker, answering a batch of `Check`s in one round trip.
- `CacheState` keeps everything in Django's cache. Its detections depend on what the cache
  evicts (a local-memory cache keeps 300 entries), so ingest no longer uses it.
- `MemoryState` keeps it in a dict, with an injectable clock, for unit tests and one-off
  runs.

Times given to the state are EVENT times (the log line's timestamp, as epoch seconds), not
the time of analysis: a burst of 10 failures within 60 seconds in a file ingested an hour
later is still a burst, and a replay at any speed finds the same bursts. The storage's own
expiry (cache TTL) is wall-clock and only collects garbage.

Counting: a window of W seconds is cut into buckets of b = max(1, W // 20) seconds, one
counter each (`incr` is atomic in Redis). The count at time t sums the W // b buckets
ending with t's bucket, so it covers between W - b and W seconds before t: never more than
the window, which keeps a threshold from firing on events spread wider than it says.
"""

import hashlib
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

BUCKETS_PER_WINDOW = 20
# Wall-clock slack added to every TTL, so a key outlives the window it serves.
TTL_GRACE = 120
# How long a claim (the record that a rule fired for a key) is kept, at least: rules that
# look back for another rule's firing (`preceded_by`) can see this far.
CLAIM_MEMORY = 24 * 3600

_SAFE_PART = re.compile(r"^[A-Za-z0-9_.:@/-]{1,80}$")


def key_part(value):
    """A cache-safe key component: short safe text as is, anything else hashed (user names
    and log values may hold spaces or control characters memcached-style keys refuse)."""
    text = str(value)
    if _SAFE_PART.match(text):
        return text
    return "h" + hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Check:
    """What one rule asks the state about one line, answered in this order, each step only
    if the previous passed:

    - `first_seen` (scope, value, ttl): `remember`; passes when the scope was known and
      the value is new to it;
    - `preceded` ((rule id, correlation key, within), ...) or None: passes when one of
      those rules' claims (`last_claimed("fired:<key>")`) happened at most `within`
      seconds before `at` (an empty tuple never passes: those rules are disabled);
    - `distinct` (key, hold) or None: `claim` of the key; passes when it was not claimed
      within `hold` (a Sigma value_count: each value counts once per timespan);
    - `threshold` (key, window, count) or (key, window, count, exact): `count`; passes at
      `count` or more (exactly `count` when `exact`);
    - `sequence` (key, member keys, span, ordered) or None: `claim` of the key (when this
      line's rule matched), then passes when every member key was claimed at most `span`
      seconds before `at`, in the listed order if `ordered` (Sigma temporal correlations);
    - the claim of `claim_key` (`claim` with `hold` and `memory`): the rule fires.

    `line` is a stable id of the line ("<memo key>:<line number>", see
    `incidents.processing.line_id`) or None: a shared
    state answers a line it has already answered as it did then (a chunk processed
    again after a crash counts and fires once).
    """

    rule: str
    at: float
    claim_key: str
    hold: float
    memory: float
    first_seen: tuple | None = None
    preceded: tuple | None = None
    threshold: tuple | None = None
    line: str | None = None
    distinct: tuple | None = None
    sequence: tuple | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to a `Check`: whether the rule fired, the count (threshold rules), and
    which look-back passed: (index in `Check.preceded`, event time of that claim)."""

    fired: bool
    count: int | None = None
    preceded: tuple | None = None


NOT_FIRED = Verdict(False)


class DetectionState:
    """Counters, claims and remembered values for the analyzer (see the module docstring).

    Subclasses provide five storage primitives: `_add` (set if absent, atomic), `_incr`
    (create at 0 if absent, then add one, atomic), `_get`, `_get_many` and `_set`.
    `rule` (the id of the rule asking), `at` (for `remember`, the event time) and
    `memory` (for `claim`, how long the claim matters) are for stores that bound or
    expire state per rule (`BoundedState`); these ignore them.
    """

    prefix = "tlpipe"

    def _key(self, kind, *parts):
        return ":".join([self.prefix, kind, *(key_part(part) for part in parts)])

    # -- public operations --------------------------------------------------------------

    #: Whether several processes see the same state (then a crashed process's lines need
    #: not be analysed again to restore it).
    shared = False

    def evaluate(self, checks):
        """A `Verdict` per `Check`, answered in order, as if one by one."""
        return [self._evaluate(check) for check in checks]

    def _evaluate(self, check):
        at, rule = check.at, check.rule
        if check.first_seen is not None:
            scope, value, ttl = check.first_seen
            scope_known, value_new = self.remember(scope, value, ttl, rule=rule, at=at)
            if not (scope_known and value_new):
                return NOT_FIRED
        preceded = None
        if check.preceded is not None:
            for index, (earlier, key, within) in enumerate(check.preceded):
                fired_at = self.last_claimed(f"fired:{key}", rule=earlier)
                if fired_at is not None and 0 <= at - fired_at <= within:
                    preceded = (index, fired_at)
                    break
            else:
                return NOT_FIRED
        if check.distinct is not None:
            key, hold = check.distinct
            if not self.claim(key, at, hold, rule=rule, memory=hold):
                return NOT_FIRED
        count = None
        if check.threshold is not None:
            key, window, needed, *exact = check.threshold
            count = self.count(key, at, window, rule=rule)
            if count < needed or (exact and exact[0] and count != needed):
                return NOT_FIRED
        if check.sequence is not None:
            key, members, span, ordered = check.sequence
            self.claim(key, at, 0, rule=rule, memory=span)
            times = []
            for member in members:
                seen = self.last_claimed(member, rule=rule)
                if seen is None or not 0 <= at - seen <= span:
                    return NOT_FIRED
                times.append(seen)
            if ordered and times != sorted(times):
                return NOT_FIRED
        if not self.claim(check.claim_key, at, check.hold, rule=rule, memory=check.memory):
            return NOT_FIRED
        return Verdict(True, count, preceded)

    def count(self, key, at, window, *, rule=None):
        """Record one occurrence of `key` at event time `at` and return how many occurred
        within the window ending at `at` (this one included)."""
        bucket = max(1, int(window) // BUCKETS_PER_WINDOW)
        buckets = max(1, int(window) // bucket)
        index = int(at // bucket)
        ttl = int(window) + bucket + TTL_GRACE
        self._incr(self._key("n", key, bucket, index), ttl)
        keys = [self._key("n", key, bucket, i) for i in range(index - buckets + 1, index + 1)]
        return sum(int(value) for value in self._get_many(keys).values())

    def peek(self, key, at, window, *, rule=None):
        """How many occurrences of `key` fall within the window ending at `at`, without
        recording one."""
        bucket = max(1, int(window) // BUCKETS_PER_WINDOW)
        buckets = max(1, int(window) // bucket)
        index = int(at // bucket)
        keys = [self._key("n", key, bucket, i) for i in range(index - buckets + 1, index + 1)]
        return sum(int(value) for value in self._get_many(keys).values())

    def claim(self, key, at, hold, *, rule=None, memory=None):
        """True when nothing claimed `key` within `hold` seconds of event time `at`; the
        claim is then recorded. This is what makes a rule fire once per window per key.

        Across processes: the last-claim check is a read, so two processes could both pass
        it at the same moment; the `add` of a key per hold-period epoch then lets only one
        of them win. The remaining gap (two claims just either side of an epoch boundary,
        at the same instant, in two processes) can at worst fire a burst twice.
        """
        last_key = self._key("claim", key)
        if hold > 0:
            last = self._get(last_key)
            if last is not None and abs(at - float(last)) < hold:
                return False
            epoch = int(at // hold)
            if not self._add(self._key("epoch", key, hold, epoch), 1, int(hold) + TTL_GRACE):
                return False
        self._set(last_key, float(at), max(int(hold), CLAIM_MEMORY) + TTL_GRACE)
        return True

    def last_claimed(self, key, *, rule=None):
        """Event time of the last successful claim of `key`, or None."""
        value = self._get(self._key("claim", key))
        return None if value is None else float(value)

    def remember(self, scope, value, ttl, *, rule=None, at=None):
        """Remember `value` within `scope` (an address for a user) for `ttl` seconds.

        Returns `(scope_known, value_new)`: whether anything had been remembered for the
        scope before, and whether this value is new to it. A user's first login teaches
        the baseline without looking suspicious: `(False, True)`.
        """
        scope_known = not self._add(self._key("scope", scope), 1, int(ttl))
        value_new = self._add(self._key("seen", scope, value), 1, int(ttl))
        return scope_known, value_new

    # -- storage primitives ------------------------------------------------------------------

    def _add(self, key, value, ttl):
        raise NotImplementedError

    def _incr(self, key, ttl):
        raise NotImplementedError

    def _get(self, key):
        raise NotImplementedError

    def _get_many(self, keys):
        raise NotImplementedError

    def _set(self, key, value, ttl):
        raise NotImplementedError


class MemoryState(DetectionState):
    """In-process state. `clock` (seconds, default time.monotonic) drives only expiry."""

    def __init__(self, *, clock=None):
        self._clock = clock or time.monotonic
        self._data = {}
        self._lock = threading.Lock()

    def _live(self, key):
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= self._clock():
            del self._data[key]
            return None
        return item

    def _add(self, key, value, ttl):
        with self._lock:
            if self._live(key) is not None:
                return False
            self._data[key] = (value, self._clock() + ttl)
            return True

    def _incr(self, key, ttl):
        with self._lock:
            item = self._live(key)
            if item is None:
                self._data[key] = (1, self._clock() + ttl)
                return 1
            self._data[key] = (item[0] + 1, item[1])
            return item[0] + 1

    def _get(self, key):
        with self._lock:
            item = self._live(key)
            return None if item is None else item[0]

    def _get_many(self, keys):
        with self._lock:
            found = {}
            for key in keys:
                item = self._live(key)
                if item is not None:
                    found[key] = item[0]
            return found

    def _set(self, key, value, ttl):
        with self._lock:
            self._data[key] = (value, self._clock() + ttl)


class CacheState(DetectionState):
    """State in a Django cache (default: `caches["default"]`), shared by every process that
    uses the same cache. Keys start with `prefix` (the cache adds its own KEY_PREFIX)."""

    def __init__(self, cache=None, *, prefix="tlpipe"):
        if cache is None:
            from django.core.cache import cache as default_cache

            cache = default_cache
        self.cache = cache
        self.prefix = prefix

    def _add(self, key, value, ttl):
        return bool(self.cache.add(key, value, timeout=ttl))

    def _incr(self, key, ttl):
        # `add` then `incr`: both atomic in Redis. If the key expires between the two, the
        # incr raises ValueError and we start it again.
        for _ in range(3):
            self.cache.add(key, 0, timeout=ttl)
            try:
                return self.cache.incr(key)
            except ValueError:
                continue
        raise RuntimeError(f"could not increment counter {key!r}")

    def _get(self, key):
        return self.cache.get(key)

    def _get_many(self, keys):
        return self.cache.get_many(keys)

    def _set(self, key, value, ttl):
        self.cache.set(key, value, timeout=ttl)


# -- the bounded store --------------------------------------------------------------------------

DEFAULT_MAX_KEYS_PER_RULE = 10_000
# Addresses remembered per user (or other scope) of a `first_seen` rule.
MAX_VALUES_PER_SCOPE = 64


class _Table:
    """The state of one kind (counters, claims or remembered scopes) of one rule: at most
    `max_keys` entries, kept in the order they were last touched."""

    __slots__ = ("entries", "evictions", "expired", "max_keys", "newest")

    def __init__(self, max_keys):
        self.entries = OrderedDict()
        self.max_keys = max_keys
        self.newest = float("-inf")  # the latest event time seen by this table
        self.evictions = 0
        self.expired = 0

    def touch(self, key, at):
        """The entry of `key` (None if absent), moved to the fresh end."""
        if at > self.newest:
            self.newest = at
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def insert(self, key, entry):
        """Add an entry; when the table is full the stalest entry goes. An entry's first
        item is the event time until which it matters: dropping one past that changes no
        detection and is counted as expired, not as an eviction."""
        self.entries[key] = entry
        while len(self.entries) > self.max_keys:
            _key, stalest = self.entries.popitem(last=False)
            if stalest[0] < self.newest:
                self.expired += 1
            else:
                self.evictions += 1


class BoundedState(DetectionState):
    """Detection state in this process's memory, bounded on purpose.

    Each rule gets at most `max_keys` counted keys (addresses, users...), `max_keys`
    claims and `max_keys` remembered scopes. When a table is full the entry touched least
    recently (by line order) is evicted, and the eviction is counted (`stats()`). Expiry
    is by event time only, never by the wall clock, and nothing else ever forgets: the
    same lines in the same order give the same detections whatever the batch boundaries,
    the Django cache's size or the speed of the replay.

    Rules are told apart by the `rule` argument the analyzer passes (else the key's first
    `:`-separated part). Thread-safe; one instance is shared by the analyzers of a process
    (`incidents.processing.detection_state`).
    """

    def __init__(self, *, max_keys=DEFAULT_MAX_KEYS_PER_RULE, max_values=MAX_VALUES_PER_SCOPE):
        self.max_keys = max(1, int(max_keys))
        self.max_values = max(1, int(max_values))
        self._tables = {}
        self._lock = threading.Lock()

    def __repr__(self):
        return f"<BoundedState max_keys={self.max_keys} tables={len(self._tables)}>"

    def _table(self, kind, rule):
        table = self._tables.get((kind, rule))
        if table is None:
            table = self._tables[(kind, rule)] = _Table(self.max_keys)
        return table

    @staticmethod
    def _rule_of(key, rule):
        return rule if rule is not None else str(key).split(":", 1)[0]

    # Entries are lists whose first item is the event time until which they matter.

    def count(self, key, at, window, *, rule=None):
        bucket = max(1, int(window) // BUCKETS_PER_WINDOW)
        buckets = max(1, int(window) // bucket)
        index = int(at // bucket)
        with self._lock:
            table = self._table("n", self._rule_of(key, rule))
            entry = table.touch(key, at)
            if entry is None:
                entry = [at + window, {}]
                table.insert(key, entry)
            entry[0] = max(entry[0], at + window)
            counts = entry[1]
            counts[index] = counts.get(index, 0) + 1
            oldest = index - buckets + 1
            if len(counts) > buckets:
                # Buckets older than the window of the newest line can never count again
                # for lines in order; out-of-order lines older than that lose them.
                newest = int((entry[0] - window) // bucket)
                for stale in [i for i in counts if i <= newest - buckets]:
                    del counts[stale]
            return sum(n for i, n in counts.items() if oldest <= i <= index)

    def peek(self, key, at, window, *, rule=None):
        bucket = max(1, int(window) // BUCKETS_PER_WINDOW)
        buckets = max(1, int(window) // bucket)
        index = int(at // bucket)
        with self._lock:
            table = self._tables.get(("n", self._rule_of(key, rule)))
            entry = table.entries.get(key) if table is not None else None
            if entry is None:
                return 0
            return sum(n for i, n in entry[1].items() if index - buckets < i <= index)

    def claim(self, key, at, hold, *, rule=None, memory=None):
        """As `DetectionState.claim`, in one process (no epoch keys needed). `memory`:
        how long after it the claim still matters (its hold, or the longest look-back of
        the rules that ask for it); evicting it later is no loss (default CLAIM_MEMORY)."""
        with self._lock:
            table = self._table("claim", self._rule_of(key, rule))
            entry = table.touch(key, at)
            if entry is not None and hold > 0 and abs(at - entry[1]) < hold:
                return False
            keep = max(hold, CLAIM_MEMORY if memory is None else memory)
            if entry is None:
                table.insert(key, [at + keep, at])
            else:
                entry[0] = max(entry[0], at + keep)
                entry[1] = at
            return True

    def last_claimed(self, key, *, rule=None):
        with self._lock:
            table = self._tables.get(("claim", self._rule_of(key, rule)))
            entry = table.entries.get(key) if table is not None else None
            return None if entry is None else float(entry[1])

    def remember(self, scope, value, ttl, *, rule=None, at=None):
        """As `DetectionState.remember`; `at` (event time) lets a scope and its values
        expire `ttl` event seconds after they were last seen (without it they stay until
        evicted)."""
        when = float("-inf") if at is None else at
        with self._lock:
            table = self._table("seen", self._rule_of(scope, rule))
            entry = table.touch(scope, when)
            if entry is not None and at is not None and at > entry[0]:
                del table.entries[scope]
                table.expired += 1
                entry = None
            if entry is None:
                table.insert(scope, [when + ttl, OrderedDict({value: when})])
                return False, True
            entry[0] = max(entry[0], when + ttl)
            values = entry[1]
            seen = values.get(value)
            value_new = seen is None or (at is not None and at - seen > ttl)
            values[value] = when
            values.move_to_end(value)
            while len(values) > self.max_values:
                values.popitem(last=False)
            return True, value_new

    def stats(self):
        """Per rule: keys held, entries evicted while they still mattered, and entries
        dropped once past their window (`expired`)."""
        totals = {}
        with self._lock:
            for (_kind, rule), table in self._tables.items():
                item = totals.setdefault(rule, {"keys": 0, "evictions": 0, "expired": 0})
                item["keys"] += len(table.entries)
                item["evictions"] += table.evictions
                item["expired"] += table.expired
        return totals

    def evictions(self):
        """Entries evicted, in all rules, while they still mattered."""
        with self._lock:
            return sum(table.evictions for table in self._tables.values())

    def clear(self):
        with self._lock:
            self._tables.clear()
