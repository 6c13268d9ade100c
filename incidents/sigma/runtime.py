"""The engine of this process, rebuilt when the stored rules change in any process.

Every change to the rules (`incidents.sigma.services`) increments a version in Django's
cache after its commit; the rows' fingerprint (count, newest change) is part of the
version too, for processes that share no cache. Each process compares its engine's
version with it at most every `SIGMA_RELOAD_SECONDS` (default 1 s), and at once in the
process that made the change, so a rule uploaded on one server fires in the others within
that delay. Rules are compiled once per process and kept by the digest of their YAML, so
a rebuild compiles only the rules that changed.
"""

import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache

from incidents.sigma.engine import DEFAULT_COOLDOWN, SigmaEngine
from incidents.sigma.loading import Refused, read_rule

logger = logging.getLogger(__name__)

VERSION_KEY = "sigma:rules:version"

_lock = threading.Lock()
_engine = None
_engine_version = None
_checked_at = 0.0
_compiled = {}  # digest -> ParsedRule


def reload_seconds():
    return float(getattr(settings, "SIGMA_RELOAD_SECONDS", 1.0))


def stored_version():
    """The stored rules' version as any process can read it: the shared cache's counter
    and the rows' own fingerprint. The fingerprint is what reaches processes that share
    no cache (the embedded setup's local-memory cache, with the server and
    `manage.py run_syslog` side by side on one SQLite file) and survives a flushed cache;
    it costs one aggregate query per process per SIGMA_RELOAD_SECONDS."""
    return (cache.get(VERSION_KEY, 0), _rows_fingerprint())


def _rows_fingerprint():
    from django.db.models import Count, Max

    from incidents.sigma.models import SigmaRule

    # Every write goes through a save() that moves updated_at (auto_now); a delete moves
    # the count; a delete and an add together move the newest id.
    row = SigmaRule.objects.aggregate(
        count=Count("id"), changed=Max("updated_at"), newest=Max("id")
    )
    return (row["count"], row["changed"], row["newest"])


def bump_version():
    """Tell every process the rules changed (called after a commit)."""
    if cache.add(VERSION_KEY, 1, timeout=None):
        version = 1
    else:
        try:
            version = cache.incr(VERSION_KEY)
        except ValueError:
            cache.set(VERSION_KEY, 1, timeout=None)
            version = 1
    forget_engine()
    return version


def forget_engine():
    """Make this process rebuild its engine on the next line."""
    global _checked_at, _engine_version
    with _lock:
        _checked_at = 0.0
        _engine_version = None


def existing_engine():
    """This process's engine if it built one, without building or reloading it."""
    return _engine


def current_engine():
    """This process's engine, rebuilt first when the stored rules changed."""
    global _engine, _engine_version, _checked_at
    now = time.monotonic()
    if _engine is not None and now - _checked_at < reload_seconds():
        return _engine
    with _lock:
        version = stored_version()
        _checked_at = now
        if _engine is None or version != _engine_version:
            _engine = build_engine()
            _engine_version = version
        return _engine


def parsed_rule(row):
    """The ParsedRule of a stored row (compiled once per YAML text), or None if refused."""
    parsed = _compiled.get(row.digest)
    if parsed is None:
        try:
            parsed = read_rule(row.text)
        except Refused:
            return None
        _compiled[parsed.digest] = parsed
    return parsed


class _ProcessDetectionState:
    """The ingest's bounded detection state (`processing.detection_state`: this process's,
    or the one shared in Redis), looked up at each call: correlations count in the same
    deterministic, bounded store as the built-in rules, whatever the cache size, and
    follow a reset of it."""

    def __getattr__(self, name):
        from incidents.processing import detection_state

        return getattr(detection_state(), name)


def build_engine(state=None):
    """An engine over the enabled, loadable stored rules."""
    from incidents.sigma.models import SigmaRule

    rows = SigmaRule.objects.filter(enabled=True, refusal_code="").only("digest", "text")
    rules = [rule for rule in (parsed_rule(row) for row in rows) if rule is not None]
    live = {rule.digest for rule in rules}
    for digest in [digest for digest in _compiled if digest not in live]:
        del _compiled[digest]
    cooldown = int(getattr(settings, "SIGMA_COOLDOWN", DEFAULT_COOLDOWN))
    return SigmaEngine(rules, state or _ProcessDetectionState(), cooldown=cooldown)
