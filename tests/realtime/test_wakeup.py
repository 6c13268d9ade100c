"""The hub's wake-up channel (`realtime.wakeup`): a child's byte ends the poll's wait at
once, many bytes make one wake-up, and a broken channel leaves the interval in charge."""

import asyncio
import os
import time

from realtime.wakeup import HubNotifier, TableWakeups


def notifier_for(wakeups):
    notifier = HubNotifier()
    notifier.adopt(os.dup(wakeups.open()))
    return notifier


async def test_a_byte_from_the_child_ends_the_wait_at_once():
    wakeups = TableWakeups()
    notifier = notifier_for(wakeups)
    asyncio.get_running_loop().call_later(0.05, notifier.notify)
    started = time.monotonic()
    assert await wakeups.wait(30) is True
    assert time.monotonic() - started < 1


async def test_many_wake_ups_make_one():
    wakeups = TableWakeups()
    notifier = notifier_for(wakeups)
    assert await wakeups.wait(0.05) is False  # attached, nothing sent
    for _ in range(100):
        notifier.notify()
    assert await wakeups.wait(5) is True
    assert wakeups.received == 100
    assert await wakeups.wait(0.05) is False


async def test_without_a_channel_the_wait_is_the_interval():
    started = time.monotonic()
    assert await TableWakeups().wait(0.2) is False
    assert 0.15 < time.monotonic() - started < 2


async def test_a_notifier_whose_server_is_gone_stops_trying():
    wakeups = TableWakeups()
    notifier = notifier_for(wakeups)
    wakeups._reader.close()  # the server's end is gone
    notifier.notify()  # logged once, not raised
    assert notifier._socket is None
    notifier.notify()
