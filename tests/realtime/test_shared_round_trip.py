"""Calls made at once share a round trip (realtime.store.SharedRoundTrip), and so do calls
made while one is under way: batches are bounded, and a batch that cannot be sent fails
its calls, never leaves them waiting."""

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
    await _ended(shared)  # kept until done, then let go


async def test_calls_made_while_a_round_trip_is_under_way_go_together_after_it():
    batches = []
    first_sent = asyncio.Event()
    release = asyncio.Event()

    async def send(items):
        batches.append(list(items))
        if len(batches) == 1:
            first_sent.set()
            await release.wait()
        return [item * 2 for item in items]

    shared = SharedRoundTrip(send)
    first = shared(0)
    await first_sent.wait()
    later = [shared(n) for n in range(1, 4)]
    await asyncio.sleep(0)
    assert batches == [[0]]  # they wait for the round trip under way
    release.set()
    assert await asyncio.gather(first, *later) == [0, 2, 4, 6]
    assert batches == [[0], [1, 2, 3]]  # and then share one
    await _ended(shared)


async def test_a_trip_starts_spacing_seconds_after_the_last_at_the_earliest():
    loop = asyncio.get_running_loop()
    starts = []

    async def send(items):
        starts.append(loop.time())
        return list(items)

    shared = SharedRoundTrip(send, spacing=0.2)
    before = loop.time()
    assert await shared(1) == 1
    assert starts[0] - before < 0.1  # nothing sent lately: at once
    assert await asyncio.gather(shared(2), shared(3)) == [2, 3]
    assert len(starts) == 2 and starts[1] - starts[0] >= 0.2  # one trip, spaced


async def test_a_cancelled_send_fails_its_calls():
    started = asyncio.Event()

    async def send(items):
        started.set()
        await asyncio.sleep(60)

    shared = SharedRoundTrip(send)
    calls = [shared(n) for n in range(3)]
    await started.wait()
    shared.sender.cancel()
    later = shared(3)  # waits for the one under way, and is cancelled with it
    for call in [*calls, later]:
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(call, 5)


async def test_a_send_cancelled_before_it_starts_fails_its_calls_and_the_next_call_goes():
    async def send(items):
        return list(items)

    shared = SharedRoundTrip(send)
    first = shared(1)
    shared.sender.cancel()  # before the loop's next turn: _send_pending never runs
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(first, 5)
    assert await asyncio.wait_for(shared(2), 5) == 2
    await _ended(shared)


async def _ended(shared):
    """The sending task ends once nothing waits (its last step follows its results)."""
    if shared.sender is not None:
        await asyncio.wait_for(shared.sender, 5)
    assert shared.sender is None


async def test_no_limits_count_nothing_in_the_local_store():
    counts, left = await LocalStore().hits([], 60)
    assert counts == [] and 0 < left <= 60
