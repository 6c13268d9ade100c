"""A leader lease in the Django cache, so one monitor runner publishes across processes.

Semantics (with the shared Redis cache of a production deployment):

- The lease is one cache key holding the owner's id, with a TTL. `acquire()` takes it with
  `cache.add` (Redis SET NX: atomic, one winner) or, when the key already names this owner,
  renews it with `touch`. Any other owner gets False.
- The holder calls `acquire()` on every tick (default every second) and the TTL (default
  20 s) is much longer than a tick, so the key only expires when the holder is gone or has
  been stalled longer than the TTL; another instance then takes over within one tick.
- Not a consensus lock: a holder stalled past the TTL that wakes in the middle of a renew
  (after its `get` read its own id, before its `touch`) can extend the new holder's key and
  believe itself leader for one tick, so two instances may publish once each. Monitor
  output is periodic and idempotent in effect (the next sample replaces it), which makes
  that acceptable; do not use this lease to guard writes.
- `release()` deletes the key when this owner holds it (same read-then-delete caveat), so a
  clean shutdown hands over at once instead of after the TTL.

With the embedded default's local-memory cache, the lease only coordinates runners inside
one process, which is all that cache can see.
"""

import os
import socket
import uuid

from channels.db import database_sync_to_async


class CacheLeaderLock:
    """A renewable lease named `name` in `cache` (default: the default cache)."""

    def __init__(self, name="monitors:leader", *, ttl=20, cache=None, owner=None):
        if ttl < 1:
            raise ValueError("ttl must be at least 1 second")
        if cache is None:
            from django.core.cache import cache as default_cache

            cache = default_cache
        self.cache = cache
        self.key = name
        self.ttl = int(ttl)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def acquire(self):
        """Take or renew the lease; True when this instance is the leader now."""
        if self.cache.add(self.key, self.owner, timeout=self.ttl):
            return True
        if self.cache.get(self.key) == self.owner:
            # touch() is False when the key expired between the two calls: then try to
            # take it again rather than assume.
            return bool(self.cache.touch(self.key, timeout=self.ttl)) or bool(
                self.cache.add(self.key, self.owner, timeout=self.ttl)
            )
        return False

    def release(self):
        if self.cache.get(self.key) == self.owner:
            self.cache.delete(self.key)

    def holder(self):
        """The owner id holding the lease, or None."""
        return self.cache.get(self.key)

    async def aacquire(self):
        return await database_sync_to_async(self.acquire, thread_sensitive=False)()

    async def arelease(self):
        return await database_sync_to_async(self.release, thread_sensitive=False)()
