"""Waiting for what a test needs to have happened, with a deadline, instead of sleeping for
a guessed time: the wait ends as soon as the condition holds (fast on a quiet machine), and
a condition that never holds fails the test saying what did not happen (not a later,
puzzling assertion)."""

import asyncio
import inspect
import time


async def until(condition, message, *, timeout=5.0, interval=0.05):
    """Poll `condition()` (a function, or a coroutine function) on the event loop until it
    returns something truthy, and return that. After `timeout` seconds the test fails
    with `message`. Sync conditions run on the loop: no database in them (use
    `tests.sockets.eventually` or an async condition calling `in_thread`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {message}")
        await asyncio.sleep(interval)


def wait_until(condition, message, *, timeout=5.0, interval=0.05):
    """`until` for sync tests: polls `condition()` in this thread."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {message}")
        time.sleep(interval)
