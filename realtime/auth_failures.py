"""Failed socket authentications: audited per source and window, and refused early when
the same credentials keep failing from the same source.

An unauthenticated client can open sockets as fast as it likes. Audited one by one, each
bad token was an audit row and a `user_action` frame on every admin socket (5,000 in 8 s
flood both); and clients that reconnect with an expired token, resetting their backoff
on open, come back every second for ever. So:

- **Audit.** The first failure from a source (client address) in a window of
  REALTIME_AUTH_FAILURE_WINDOW seconds is written at once, as before; the others of that
  window are counted, and one row with their count (`repeated`) is written when the
  window ends. Per process: with several processes, each writes its own count.
- **Refusal.** A credential (token or session cookie, by digest) that failed
  REALTIME_AUTH_FAILURE_LIMIT times from one source within the window is refused
  before the socket is accepted (the client sees HTTP 403, no frame, no audit row of
  its own): the first refusals keep the documented `AUTH_FAILED` frame and 1008. The
  count is kept in the shared store, so it holds across processes with Redis.
"""

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings

from realtime import auditing
from realtime.client_address import scope_address

logger = logging.getLogger(__name__)

MAX_SOURCES = 10_000  # sources tallied at once; beyond, the rest share one tally
OVERFLOW_SOURCE = "(other sources)"


def credential_key(scope, credential):
    """The store key of one credential used from one source (never the credential)."""
    digest = hashlib.sha256(credential.encode("utf-8", "replace")).hexdigest()[:32]
    return f"authfail:{scope_address(scope) or '-'}:{digest}"


async def failed_repeatedly(store, key):
    """Whether this credential already failed the limit from this source (fails open:
    should the store be down, the socket is checked as usual)."""
    try:
        count = await store.count(key, settings.REALTIME["AUTH_FAILURE_WINDOW"])
    except Exception as exc:
        logger.warning("auth failure counts unavailable: %s", exc)
        return False
    return count >= settings.REALTIME["AUTH_FAILURE_LIMIT"]


async def count_failure(store, key):
    try:
        await store.hit(key, settings.REALTIME["AUTH_FAILURE_WINDOW"])
    except Exception as exc:
        logger.warning("auth failure counts unavailable: %s", exc)


@dataclass
class _Tally:
    scope: dict
    details: dict
    repeated: int = 0
    started: float = field(default_factory=time.time)


class FailureAudit:
    """One event loop's tallies of failed authentications, by source."""

    def __init__(self):
        self._tallies = {}

    async def failed(self, scope, details):
        """Audit one failure: written now if it is the source's first in the window,
        else counted into the row written at the window's end."""
        source = scope_address(scope) or "-"
        if source not in self._tallies and len(self._tallies) >= MAX_SOURCES:
            source = OVERFLOW_SOURCE
        tally = self._tallies.get(source)
        if tally is not None:
            tally.repeated += 1
            tally.details = details  # the latest reason goes into the summary
            return
        self._tallies[source] = _Tally(scope=scope, details=details)
        asyncio.get_running_loop().call_later(
            settings.REALTIME["AUTH_FAILURE_WINDOW"], self._window_ended, source
        )
        await _write(details, scope)

    def refused_early(self, scope):
        """A socket refused before acceptance: counted into the source's tally."""
        source = scope_address(scope) or "-"
        tally = self._tallies.get(source)
        if tally is not None:
            tally.repeated += 1
        else:
            asyncio.get_running_loop().create_task(
                self.failed(scope, {"reason": "credentials failed repeatedly: refused early"})
            )

    def _window_ended(self, source):
        tally = self._tallies.pop(source, None)
        if tally is None or not tally.repeated:
            return
        details = {
            **tally.details,
            "repeated": tally.repeated,
            "window_seconds": settings.REALTIME["AUTH_FAILURE_WINDOW"],
        }
        asyncio.get_running_loop().create_task(_write(details, tally.scope))


async def _write(details, scope):
    try:
        await auditing.writer().write("realtime.auth_failed", None, details, scope)
    except Exception:
        logger.exception("could not write the audit row of a failed socket authentication")


_audits = {}


def audit():
    """The running event loop's tallies."""
    loop = asyncio.get_running_loop()
    found = _audits.get(loop)
    if found is None:
        for old_loop in [old for old in _audits if old.is_closed()]:
            del _audits[old_loop]
        found = _audits[loop] = FailureAudit()
    return found
