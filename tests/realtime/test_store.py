"""The Redis store keeps a bounded pool: sockets connecting at once wait for a pooled
connection instead of opening one each (runs on the PostgreSQL + Redis pass)."""

import asyncio

import pytest
from django.conf import settings

from realtime.store import POOL_SIZE, RedisStore

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")


async def test_many_calls_at_once_share_a_bounded_pool():
    store = RedisStore(settings.REDIS_URL, settings.REDIS_KEY_PREFIX)
    pool = store.redis.connection_pool
    used = set()
    get_connection = pool.get_connection

    async def recording_get_connection(*args, **kwargs):
        connection = await get_connection(*args, **kwargs)
        used.add(id(connection))
        return connection

    pool.get_connection = recording_get_connection
    try:
        counts = await asyncio.gather(
            *(store.add_connection("test-origin", user_id) for user_id in range(POOL_SIZE * 10))
        )
        assert [per_user for total, per_user in counts] == [1] * (POOL_SIZE * 10)
        assert 1 < len(used) <= POOL_SIZE
        for user_id in range(POOL_SIZE * 10):
            await store.remove_connection("test-origin", user_id)
    finally:
        await store.redis.aclose()
