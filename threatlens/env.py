"""Small, strict readers for configuration from environment variables.

Each helper returns the default when the variable is unset or empty, and raises
`ImproperlyConfigured` naming the variable when a value is present but wrong, so a
typo in a deployment fails at start-up instead of running with a surprising value.
"""

import os
import re

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _raw(name):
    value = os.environ.get(name, "").strip()
    return value or None


def _fail(name, value, expected):
    raise ImproperlyConfigured(f"{name}={value!r} is not valid: expected {expected}.")


def env_str(name, default=None):
    value = _raw(name)
    return default if value is None else value


def env_bool(name, default=False):
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    return _fail(name, value, "one of " + ", ".join(sorted(TRUE_WORDS | FALSE_WORDS)))


def env_int(name, default, *, minimum=None, maximum=None):
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        return _fail(name, value, "a whole number")
    if minimum is not None and number < minimum:
        _fail(name, value, f"a whole number of at least {minimum}")
    if maximum is not None and number > maximum:
        _fail(name, value, f"a whole number of at most {maximum}")
    return number


def env_float(name, default, *, minimum=None):
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        return _fail(name, value, "a number")
    if number != number or (minimum is not None and number < minimum):
        _fail(name, value, f"a number of at least {minimum}")
    return number


def env_duration(name, default, *, minimum=0):
    """Seconds, written as `90`, `90s`, `15m`, `2h` or `7d`."""
    value = _raw(name)
    if value is None:
        return default
    seconds = parse_duration(value)
    if seconds is None or seconds < minimum:
        _fail(name, value, f"a duration such as 90, 90s, 15m, 2h or 7d (at least {minimum}s)")
    return seconds


def parse_duration(text):
    """Seconds in `text` (`90`, `90s`, `15m`, `2h`, `7d`), or None when it is not a duration."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", text.strip().lower())
    if not match:
        return None
    return float(match[1]) * DURATION_UNITS[match[2] or "s"]


def env_list(name, default=()):
    """A comma-separated list; blanks around items are ignored, empty items are an error."""
    value = _raw(name)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items):
        _fail(name, value, "a comma-separated list without empty items")
    return items


def env_url(name, default=None, *, schemes):
    value = _raw(name)
    if value is None:
        return default
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        _fail(name, value, "a URL starting with " + " or ".join(f"{s}://" for s in schemes))
    return value
