"""State the server processes share: connection counts, rate-limit windows, where each
named client left off, each process's summary (a heartbeat) and, when `/ws/info` asks,
the list of its connections.

With `REDIS_URL` it lives in Redis, so limits and `/ws/info` are cluster-wide (DESIGN.md:
nothing kept only in one process's memory may be needed by another). In the embedded
default there is one server process and it lives in that process's memory.
"""

import asyncio
import functools
import json
import time

from django.conf import settings

PROCESS_TTL = 30  # seconds a process's counts and summary outlive its last heartbeat
REPORT_TTL = 30  # seconds the connection lists sent for one `/ws/info` request are kept


class LocalStore:
    """One process: plain dictionaries (never awaited on, so never out of date)."""

    def __init__(self):
        self.total = 0
        self.per_user = {}
        self.windows = {}
        self.client_states = {}

    async def add_connection(self, origin, user_id):
        self.total += 1
        self.per_user[user_id] = self.per_user.get(user_id, 0) + 1
        return self.total, self.per_user[user_id]

    async def remove_connection(self, origin, user_id):
        self.total = max(0, self.total - 1)
        left = self.per_user.get(user_id, 1) - 1
        if left > 0:
            self.per_user[user_id] = left
        else:
            self.per_user.pop(user_id, None)

    async def hit(self, key, window):
        """Count one hit in the current fixed window; returns (count, seconds left)."""
        now = time.time()
        start = now - now % window
        count, window_start = self.windows.get(key, (0, start))
        if window_start != start:
            count = 0
        self.windows[key] = (count + 1, start)
        if len(self.windows) > 100_000:
            self.windows = {k: v for k, v in self.windows.items() if v[1] == start}
        return count + 1, window - (now - start)

    async def hits(self, limits, window):
        """Count a hit in each (key, limit) of `limits` in turn, until one is past its
        limit; returns (the counts made, seconds left in the window)."""
        now = time.time()
        counts, left = [], window - now % window  # no limits: nothing counted
        for key, limit in limits:
            count, left = await self.hit(key, window)
            counts.append(count)
            if count > limit:
                break
        return counts, left

    async def count(self, key, window):
        """Hits counted in the current fixed window, without counting one."""
        now = time.time()
        count, window_start = self.windows.get(key, (0, now - now % window))
        return count if window_start == now - now % window else 0

    async def get_client_state(self, key):
        value = self.client_states.get(key)
        if value and value[1] > time.time():
            return value[0]
        return None

    async def set_client_state(self, key, state, ttl):
        self.client_states[key] = (state, time.time() + ttl)

    # One process, so no other process reads its summary: `/ws/info` asks the hub itself.
    async def heartbeat(self, origin, summary):
        pass

    async def forget_process(self, origin):
        pass

    async def all_summaries(self):
        return []

    async def put_report(self, request_id, origin, encoded):
        pass

    async def get_reports(self, request_id):
        return {}

    async def ping(self):
        return True


# Connections to Redis the store keeps per process. A call made while all are busy waits
# for one (at most POOL_WAIT seconds): a few hundred sockets connecting at once would
# otherwise open a connection each, megabytes of buffers kept for the life of the process.
POOL_SIZE = 20
POOL_WAIT = 5


# KEYS: this process's count hash, the live processes' sorted set. ARGV: the hash's TTL,
# now, the cutoff of live processes, the prefix of count hashes, origin, then the users'
# fields of the sockets counted in (a JSON list). Each socket in turn is counted, then
# every live process's counts summed: what a script per socket returned, in one round
# trip. The reply is one JSON text ([total, the user's, ...]): redis-py packs and parses
# each argument and each element of a reply in Python, most of a batch's cost.
ADD_CONNECTIONS = """
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
local live = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[3], '+inf')
local counts = {}
for _, field in ipairs(cjson.decode(ARGV[6])) do
  redis.call('HINCRBY', KEYS[1], 'total', 1)
  redis.call('HINCRBY', KEYS[1], field, 1)
  local total, mine = 0, 0
  for _, origin in ipairs(live) do
    local row = redis.call('HMGET', ARGV[4] .. origin, 'total', field)
    total = total + (tonumber(row[1]) or 0)
    mine = mine + (tonumber(row[2]) or 0)
  end
  counts[#counts + 1] = total
  counts[#counts + 1] = mine
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return cjson.encode(counts)
"""


# ARGV[1]: the calls, in JSON: for each, the TTL of its windows, then its windows as
# [key, limit]. A call's windows are counted in turn until one is past its limit (the
# rest are not counted). The reply, in JSON: for each call, the counts made. The keys go
# in the argument, not in KEYS: the store is one Redis, never a cluster, and a batch names
# hundreds of keys, each of which redis-py would pack on its own.
NO_LIMIT = 2**53  # a limit no count reaches
HITS = """
local results = {}
for i, call in ipairs(cjson.decode(ARGV[1])) do
  local counts = {}
  for j = 2, #call do
    local key, limit = call[j][1], call[j][2]
    local count = redis.call('INCR', key)
    redis.call('EXPIRE', key, call[1])
    counts[#counts + 1] = count
    if count > limit then
      break
    end
  end
  results[i] = counts
end
return cjson.encode(results)
"""

# KEYS: the count hashes, ARGV: the user's field, for each socket counted out.
REMOVE_CONNECTIONS = """
for i, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'total', -1)
  redis.call('HINCRBY', key, ARGV[i], -1)
end
return #KEYS
"""


class StoreUnavailable(Exception):
    """The store could not be reached for a call sent with others (`SharedRoundTrip`)."""


# Calls sent to Redis in one script call at most: a longer batch is split.
MAX_BATCH = 256
# Seconds between the starts of two round trips of one kind of call, at least. redis-py
# spends 0.15-0.5 ms of the interpreter on a call, whatever it carries: in a reconnect
# storm (5,000 sockets) a trip every few milliseconds was 15% of the process's time, and
# every 10 ms still 8%. A call made when none was sent within this time goes at once;
# otherwise it waits for the next trip (a socket's message, for its rate-limit count:
# 20 ms at most, only while others keep coming).
TRIP_SPACING = 0.02


class SharedRoundTrip:
    """Calls share round trips to Redis. Thousands of sockets connect at once after a
    deploy: each waited for a pooled connection and a round trip of its own, most of a
    connect on Redis. A call made while no round trip is under way goes on the loop's
    next turn, with every call made until then; calls made while one is under way wait
    for it to end and then go together (in batches of MAX_BATCH at most, sent at once),
    and a trip starts `spacing` seconds after the last one at the earliest. The busier
    the server, the more calls share each trip. `send(items)` returns one result per
    item, in order; if it raises, every call of the batch raises StoreUnavailable."""

    __slots__ = ("send", "spacing", "pending", "sender", "last_sent")

    def __init__(self, send, spacing=0.0):
        self.send = send
        self.spacing = spacing
        self.pending = []  # (item, future) of the calls the next round trip takes
        self.sender = None  # the task sending them (the loop keeps weak references)
        self.last_sent = float("-inf")

    def __call__(self, item):
        """A future of the item's result."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((item, future))
        if self.sender is None:
            self.sender = loop.create_task(self._send_pending())
            self.sender.add_done_callback(self._sent)
        return future

    def _sent(self, task):
        """A task cancelled before its first step never ran `_send_pending`: its calls
        would wait for good, and so would every later one."""
        if self.sender is task:
            self.sender = None
            calls, self.pending = self.pending, []
            _fail(calls, "the round trip was cancelled before it was sent")

    async def _send_pending(self):
        try:
            loop = asyncio.get_running_loop()
            while self.pending:
                wait = self.last_sent + self.spacing - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.last_sent = loop.time()
                calls, self.pending = self.pending, []
                batches = [calls[at : at + MAX_BATCH] for at in range(0, len(calls), MAX_BATCH)]
                await asyncio.gather(*map(self._send_batch, batches))
        except asyncio.CancelledError:
            calls, self.pending = self.pending, []
            _fail(calls, "the round trip was cancelled")
            raise
        finally:
            self.sender = None

    async def _send_batch(self, batch):
        try:
            results = await self.send([item for item, _ in batch])
        except BaseException as exc:
            _fail(batch, f"{type(exc).__name__}: {exc}", exc)
            if not isinstance(exc, Exception):
                raise  # cancelled: its callers have heard
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # else its caller was cancelled
                future.set_result(result)


def _fail(calls, reason, cause=None):
    """StoreUnavailable for each call still waiting (one exception each: every caller
    raises its own)."""
    for _, future in calls:
        if not future.done():
            error = StoreUnavailable(reason)
            error.__cause__ = cause
            future.set_exception(error)


class RedisStore:
    """Every process: one Redis. A process's counts sit in its own hash that expires when
    its heartbeats stop, so a crashed process's connections stop counting by themselves."""

    def __init__(self, url, prefix):
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff, NoBackoff
        from redis.exceptions import ConnectionError, TimeoutError

        def client(retries):
            pool = redis.BlockingConnectionPool.from_url(
                url,
                max_connections=POOL_SIZE,
                timeout=POOL_WAIT,
                socket_connect_timeout=2,
                socket_timeout=2,
                health_check_interval=15,
                retry=Retry(
                    ExponentialBackoff(cap=0.5, base=0.05) if retries else NoBackoff(), retries
                ),
                retry_on_error=[ConnectionError, TimeoutError],
            )
            return redis.Redis.from_pool(pool)  # closed with the client

        # After a Redis restart the pooled connections are dead: each is replaced on
        # first use instead of failing that call (a pool from a URL retries nothing).
        self.redis = client(retries=3)
        # The scripts that count (sockets in and out, rate-limit hits) are never sent
        # twice: one that timed out may have run, and run again its counts would go in
        # twice. Their own client, which retries nothing (redis-py's retry belongs to a
        # pool's connections, not to a call); a failed batch is StoreUnavailable.
        self.counting = client(retries=0)
        self.prefix = f"{prefix}.rt"
        self._add_connections = self.counting.register_script(ADD_CONNECTIONS)
        self._remove_connections_script = self.counting.register_script(REMOVE_CONNECTIONS)
        self._hits_script = self.counting.register_script(HITS)
        self._adding = {}  # origin -> its SharedRoundTrip
        self._removing = SharedRoundTrip(self._remove_connections, TRIP_SPACING)
        self._hitting = SharedRoundTrip(self._hits, TRIP_SPACING)

    def _key(self, *parts):
        return ":".join((self.prefix, *map(str, parts)))

    async def _live_origins(self):
        cutoff = time.time() - PROCESS_TTL
        return [
            o.decode() for o in await self.redis.zrangebyscore(self._key("procs"), cutoff, "+inf")
        ]

    async def add_connection(self, origin, user_id):
        # Counted in and every live process's counts summed atomically (a script), in
        # one round trip with the other sockets connecting meanwhile. Each connect waits
        # on it.
        adding = self._adding.get(origin)
        if adding is None:
            adding = self._adding[origin] = SharedRoundTrip(
                functools.partial(self._add_connections_of, origin), TRIP_SPACING
            )
        return await adding(f"u:{user_id}")

    async def _add_connections_of(self, origin, fields):
        now = time.time()
        args = [PROCESS_TTL, now, now - PROCESS_TTL, self._key("conn", ""), origin]
        keys = [self._key("conn", origin), self._key("procs")]
        counts = json.loads(
            await self._add_connections(keys=keys, args=[*args, json.dumps(fields)])
        )
        pairs = zip(counts[::2], counts[1::2], strict=True)
        return [(int(total), int(mine)) for total, mine in pairs]

    async def remove_connection(self, origin, user_id):
        await self._removing((origin, user_id))

    async def _remove_connections(self, items):
        await self._remove_connections_script(
            keys=[self._key("conn", origin) for origin, _ in items],
            args=[f"u:{user_id}" for _, user_id in items],
        )
        return [None] * len(items)

    async def hit(self, key, window):
        counts, left = await self.hits([(key, NO_LIMIT)], window)
        return counts[0], left

    async def hits(self, limits, window):
        now = time.time()
        start = int(now - now % window)
        left = window - (now - start)
        if not limits:
            return [], left  # nothing to count (and cjson would write an empty list as {})
        windows = [[self._key("rl", key, start), min(limit, NO_LIMIT)] for key, limit in limits]
        return await self._hitting([int(window) + 1, *windows]), left

    async def _hits(self, calls):
        replies = json.loads(await self._hits_script(args=[json.dumps(calls)]))
        return [[int(count) for count in counts] for counts in replies]

    async def count(self, key, window):
        now = time.time()
        value = await self.redis.get(self._key("rl", key, int(now - now % window)))
        return int(value) if value else 0

    async def get_client_state(self, key):
        value = await self.redis.get(self._key("client", key))
        return json.loads(value) if value else None

    async def set_client_state(self, key, state, ttl):
        await self.redis.set(self._key("client", key), json.dumps(state), ex=max(1, int(ttl)))

    async def heartbeat(self, origin, summary):
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self._key("summary", origin), json.dumps(summary), ex=PROCESS_TTL)
            pipe.expire(self._key("conn", origin), PROCESS_TTL)
            pipe.zadd(self._key("procs"), {origin: time.time()})
            pipe.zremrangebyscore(self._key("procs"), "-inf", time.time() - 10 * PROCESS_TTL)
            await pipe.execute()

    async def forget_process(self, origin):
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(self._key("summary", origin), self._key("conn", origin))
            pipe.zrem(self._key("procs"), origin)
            await pipe.execute()

    async def all_summaries(self):
        origins = await self._live_origins()
        if not origins:
            return []
        values = await self.redis.mget([self._key("summary", origin) for origin in origins])
        return [json.loads(value) for value in values if value]

    async def put_report(self, request_id, origin, encoded):
        """One process's list of connections (JSON text) for the `/ws/info` request
        `request_id`; kept for REPORT_TTL seconds."""
        key = self._key("report", request_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, origin, encoded).expire(key, REPORT_TTL)
            await pipe.execute()

    async def get_reports(self, request_id):
        """{origin: its list of connections} of the processes that answered so far."""
        reports = await self.redis.hgetall(self._key("report", request_id))
        return {origin.decode(): json.loads(value) for origin, value in reports.items()}

    async def ping(self):
        return await asyncio.wait_for(self.redis.ping(), 2)

    async def aclose(self):
        await self.redis.aclose()
        await self.counting.aclose()


_local_store = LocalStore()


def make_store():
    """The store for the running event loop (a Redis client belongs to one loop)."""
    if settings.REDIS_URL:
        return RedisStore(settings.REDIS_URL, settings.REDIS_KEY_PREFIX)
    return _local_store


def reset_local_store():
    """For tests: forget every count of the embedded store."""
    global _local_store
    _local_store = LocalStore()
