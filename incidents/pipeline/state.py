"""Detection state: sliding-window counters, fire-once claims, remembered values.

The analyzer keeps no state of its own; it asks a `DetectionState`. Two implementations
share every algorithm and differ only in storage:

- `CacheState` keeps everything in Django's cache, so with the Redis cache of a production
  deployment all processes (server workers, `ingest_logs`, `watch_logs`) see the same
  counters and do not fire the same burst twice.
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


class DetectionState:
    """Counters, claims and remembered values for the analyzer (see the module docstring).

    Subclasses provide five storage primitives: `_add` (set if absent, atomic), `_incr`
    (create at 0 if absent, then add one, atomic), `_get`, `_get_many` and `_set`.
    """

    prefix = "tlpipe"

    def _key(self, kind, *parts):
        return ":".join([self.prefix, kind, *(key_part(part) for part in parts)])

    # -- public operations --------------------------------------------------------------

    def count(self, key, at, window):
        """Record one occurrence of `key` at event time `at` and return how many occurred
        within the window ending at `at` (this one included)."""
        bucket = max(1, int(window) // BUCKETS_PER_WINDOW)
        buckets = max(1, int(window) // bucket)
        index = int(at // bucket)
        ttl = int(window) + bucket + TTL_GRACE
        self._incr(self._key("n", key, bucket, index), ttl)
        keys = [self._key("n", key, bucket, i) for i in range(index - buckets + 1, index + 1)]
        return sum(int(value) for value in self._get_many(keys).values())

    def peek(self, key, at, window):
        """How many occurrences of `key` fall within the window ending at `at`, without
        recording one."""
        bucket = max(1, int(window) // BUCKETS_PER_WINDOW)
        buckets = max(1, int(window) // bucket)
        index = int(at // bucket)
        keys = [self._key("n", key, bucket, i) for i in range(index - buckets + 1, index + 1)]
        return sum(int(value) for value in self._get_many(keys).values())

    def claim(self, key, at, hold):
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

    def last_claimed(self, key):
        """Event time of the last successful claim of `key`, or None."""
        value = self._get(self._key("claim", key))
        return None if value is None else float(value)

    def remember(self, scope, value, ttl):
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
