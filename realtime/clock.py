"""The wall clock token expiry is measured against: one seam, so tests move time on (the
`clock` fixture of `tests/conftest.py`) instead of sleeping until a token expires.

Everything that compares a token's `exp` with "now" (the verified-token cache, the
per-message check, the hub's expiry sweep) reads `now()`; nothing else does.
"""

import time

_now = time.time


def now():
    """Seconds since the epoch, as `time.time()` (unless a test set another clock)."""
    return _now()


def use(source):
    """Read the time from `source()` from now on (tests); `use(time.time)` restores it."""
    global _now
    _now = source
