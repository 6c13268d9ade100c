"""Calls made at once share a round trip (realtime.store.SharedRoundTrip): batches are
bounded, and a batch that cannot be sent fails its calls, never leaves them waiting."""

import asyncio

import pytest

from realtime.store import MAX_BATCH, LocalStore, SharedRoundTrip, StoreUnavailable


async def test_calls_made_at_once_go_in_batches_of_at_most_max_batch():
    batches = []

    async def send(items):
        batches.append(len(items))
        return [item * 2 for item in items]

    shared = SharedRoundTrip(send)
    results = await asyncio.gather(*(shared(n) for n in range(MAX_BATCH * 2 + 10)))
    assert results == [n * 2 for n in range(MAX_BATCH * 2 + 10)]
    assert batches == [MAX_BATCH, MAX_BATCH, 10]
    assert not shared.sending  # each task kept until done, then let go


async def test_a_cancelled_send_fails_its_calls():
    started = asyncio.Event()

    async def send(items):
        started.set()
        await asyncio.sleep(60)

    shared = SharedRoundTrip(send)
    calls = [shared(n) for n in range(3)]
    await started.wait()
    for task in list(shared.sending):
        task.cancel()
    for call in calls:
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(call, 5)


async def test_a_send_cancelled_before_it_starts_fails_its_calls_and_the_next_call_goes():
    async def send(items):
        return list(items)

    shared = SharedRoundTrip(send)
    first = shared(1)
    for task in list(shared.sending):
        task.cancel()  # before the loop's next turn: _send_batch never runs
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(first, 5)
    assert await asyncio.wait_for(shared(2), 5) == 2
    assert not shared.sending


async def test_no_limits_count_nothing_in_the_local_store():
    counts, left = await LocalStore().hits([], 60)
    assert counts == [] and 0 < left <= 60
