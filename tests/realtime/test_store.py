"""The Redis store keeps a bounded pool, and calls made at once share round trips: sockets
connecting at once neither open a connection each nor wait for one each (runs on the
PostgreSQL + Redis pass)."""

import asyncio
import uuid

import pytest
from django.conf import settings

from realtime.store import POOL_SIZE, RedisStore

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")


async def test_many_calls_at_once_share_a_bounded_pool_and_few_round_trips():
    store = RedisStore(settings.REDIS_URL, settings.REDIS_KEY_PREFIX)
    pool = store.counting.connection_pool
    used, taken = set(), []
    get_connection = pool.get_connection

    async def recording_get_connection(*args, **kwargs):
        connection = await get_connection(*args, **kwargs)
        used.add(id(connection))
        taken.append(id(connection))
        return connection

    pool.get_connection = recording_get_connection
    try:
        counts = await asyncio.gather(
            *(store.add_connection("test-origin", user_id) for user_id in range(POOL_SIZE * 10))
        )
        assert [per_user for total, per_user in counts] == [1] * (POOL_SIZE * 10)
        totals = [total for total, per_user in counts]
        assert totals == sorted(set(totals))  # each counted in turn
        assert len(used) <= POOL_SIZE
        assert len(taken) <= 3  # one script for all (its loading, should Redis lack it)
        taken.clear()
        await asyncio.gather(
            *(store.remove_connection("test-origin", user_id) for user_id in range(POOL_SIZE * 10))
        )
        assert len(taken) <= 3
        again = await store.add_connection("test-origin", 0)
        await store.remove_connection("test-origin", 0)
        assert again == (totals[0], 1)  # all counted out
    finally:
        await store.aclose()


async def test_a_message_s_windows_are_counted_until_one_is_past_its_limit():
    store = RedisStore(settings.REDIS_URL, settings.REDIS_KEY_PREFIX)
    key = f"test-{uuid.uuid4().hex}"
    limits = [(f"msg:{key}", 1), (f"sub:{key}", 10)]
    try:
        first, second = await asyncio.gather(store.hits(limits, 60), store.hits(limits, 60))
        assert (first[0], second[0]) == ([1, 1], [2])  # the second stops at msg
        assert await store.count(f"sub:{key}", 60) == 1
        assert (await store.hit(f"sub:{key}", 60))[0] == 2
        assert (await store.hits([], 60))[0] == []  # nothing to count: no trip
    finally:
        await store.aclose()


async def test_the_counting_scripts_are_never_retried():
    """A script that timed out may have run: sent again, its counts would go in twice."""
    store = RedisStore(settings.REDIS_URL, settings.REDIS_KEY_PREFIX)
    try:
        assert store.counting.get_retry().get_retries() == 0
        assert store.redis.get_retry().get_retries() > 0  # idempotent commands are
    finally:
        await store.aclose()
