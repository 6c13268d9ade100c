"""Failed-login throttling, per username and per client address.

Counters live in Django's cache, so with the Redis cache every server process sees the same
counts. Each counter is a fixed window: the first failure opens a window of
`LOGIN_THROTTLE_WINDOW` seconds, and once `LOGIN_THROTTLE_FAILURES` failures are counted in
it, further attempts for that username or from that address are refused until it closes.
Successful logins never count; a success clears its own username's counter only (never an
address counter, which an attacker could otherwise reset by logging into their own account).

When the cache cannot be reached (Redis down), the throttle degrades instead of failing:
nothing is refused and nothing is counted, logins work, and a warning says so (at most
once a minute). Locking every user out for as long as Redis is away would be worse.
"""

import functools
import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

KEY_PREFIX = "login-throttle"
DEGRADED_WARNING_INTERVAL = 60  # seconds between two "throttle degraded" warnings

_last_warning = 0.0
_warning_lock = threading.Lock()


def _degrade_on_cache_errors(default=None):
    """Run the throttle operation; if the cache raises, log (rate-limited) and return
    `default` instead: the login goes on unthrottled."""

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except Exception as exc:  # whatever the cache backend raises when unreachable
                _warn_degraded(function.__name__, exc)
                return default

        return wrapper

    return decorate


def _warn_degraded(operation, exc):
    global _last_warning
    with _warning_lock:
        now = time.monotonic()
        if _last_warning and now - _last_warning < DEGRADED_WARNING_INTERVAL:
            return
        _last_warning = now
    # The exception's type and text only: never the username or the address.
    logger.warning(
        "login throttle degraded: the cache is unreachable (%s in %s: %s); logins are "
        "not throttled until it is back",
        type(exc).__name__,
        operation,
        exc,
    )


@dataclass(frozen=True)
class Throttled:
    """Login attempts are refused for `retry_after` more seconds; `scopes` says why
    ("username", "address" or both)."""

    retry_after: int
    scopes: tuple[str, ...]


def _keys(scope, value):
    # Hashed: usernames in cache keys could be long or contain characters the cache
    # backend rejects; lower-cased so that changing the case does not open a new window.
    digest = hashlib.sha256(str(value).strip().lower().encode()).hexdigest()[:32]
    base = f"{KEY_PREFIX}:{scope}:{digest}"
    return f"{base}:count", f"{base}:until"


def _scopes(username, address):
    if username:
        yield "username", username
    if address:
        yield "address", address


@_degrade_on_cache_errors(default=None)
def check(username, address):
    """`Throttled` when attempts for this username or from this address must be refused now,
    else None."""
    limit = settings.LOGIN_THROTTLE_FAILURES
    keys = {scope: _keys(scope, value) for scope, value in _scopes(username, address)}
    if not keys:
        return None
    values = cache.get_many([k for pair in keys.values() for k in pair])
    now = time.time()
    blocked, waits = [], []
    for scope, (count_key, until_key) in keys.items():
        count = values.get(count_key) or 0
        until = values.get(until_key) or 0
        if count >= limit and until > now:
            blocked.append(scope)
            waits.append(until - now)
    if not blocked:
        return None
    return Throttled(retry_after=max(1, math.ceil(max(waits))), scopes=tuple(blocked))


@_degrade_on_cache_errors()
def register_failure(username, address):
    """Count one failed login against the username and the address."""
    window = settings.LOGIN_THROTTLE_WINDOW
    timeout = max(1, math.ceil(window))
    for scope, value in _scopes(username, address):
        count_key, until_key = _keys(scope, value)
        # `add` only sets when absent, so the first failure fixes the window's end for
        # every process; `incr` is atomic in Redis, so concurrent failures all count.
        cache.add(until_key, time.time() + window, timeout)
        cache.add(count_key, 0, timeout)
        try:
            cache.incr(count_key)
        except ValueError:
            # The window closed between add and incr: this failure opens a new one.
            cache.set(until_key, time.time() + window, timeout)
            cache.set(count_key, 1, timeout)


@_degrade_on_cache_errors()
def clear_username(username):
    """Forget the failures counted against a username (after it logged in successfully)."""
    if username:
        cache.delete_many(list(_keys("username", username)))
