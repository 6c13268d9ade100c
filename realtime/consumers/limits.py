"""A socket's limits: whether the server takes it, its place in the connection counts, and
its user's message rates. Counts are kept in the shared store (Redis when configured), so
they hold across processes."""

import logging

from django.conf import settings

from realtime.catalogue import VIEW_CONNECTIONS
from realtime.consumers.protocol import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_SERVICE_RESTART,
    CLOSE_TRY_AGAIN_LATER,
    ProtocolError,
    Refusal,
)
from realtime.hub import get_hub
from realtime.transport import ORIGIN

logger = logging.getLogger(__name__)


async def admit(user_id):
    """Whether this server takes one more socket of the user's now: (its ConnectionSlot,
    counted until released, or None; a Refusal or None)."""
    try:
        hub = get_hub()
        await hub.start()
    except Exception:
        logger.exception("socket set-up failed with a server error")
        return None, Refusal("INTERNAL_ERROR", "Service unavailable", CLOSE_INTERNAL_ERROR)
    if hub.shutting_down:
        return None, Refusal("INTERNAL_ERROR", "The server is restarting", CLOSE_SERVICE_RESTART)
    if hub.layer_healthy is False:
        return None, Refusal("INTERNAL_ERROR", "Channel layer unavailable", CLOSE_INTERNAL_ERROR)
    slot = ConnectionSlot(user_id)
    try:
        return slot, await slot.take()
    except Exception:
        logger.exception("connection registry unavailable")
        return None, Refusal("INTERNAL_ERROR", "Service unavailable", CLOSE_INTERNAL_ERROR)


class ConnectionSlot:
    """One socket counted toward REALTIME_MAX_CONNECTIONS (this server) and
    REALTIME_MAX_CONNECTIONS_PER_USER, from `take()` until `release()`."""

    __slots__ = ("user_id",)

    def __init__(self, user_id):
        self.user_id = user_id

    async def take(self):
        """Count the socket; the CONNECTION_LIMIT refusal if it is one too many, else
        None. The socket stays counted either way, until released. Raises if the store
        is unavailable (nothing counted)."""
        limits = settings.REALTIME
        total, mine = await get_hub().store.add_connection(ORIGIN, self.user_id)
        if total <= limits["MAX_CONNECTIONS"] and mine <= limits["MAX_CONNECTIONS_PER_USER"]:
            return None
        which = "server" if total > limits["MAX_CONNECTIONS"] else "user"
        limit = limits["MAX_CONNECTIONS" if which == "server" else "MAX_CONNECTIONS_PER_USER"]
        return Refusal(
            "CONNECTION_LIMIT",
            f"Maximum connections per {which} ({limit}) reached",
            CLOSE_TRY_AGAIN_LATER,
            {"limit": limit, "scope": which},
        )

    async def release(self):
        try:
            await get_hub().store.remove_connection(ORIGIN, self.user_id)
        except Exception as exc:
            logger.warning("connection registry unavailable at disconnect: %s", exc)


class RateLimits:
    """Per-user message rates over REALTIME_RATE_WINDOW: every message
    (REALTIME_MESSAGE_RATE), subscription changes (REALTIME_SUBSCRIPTION_RATE), and the
    administrative commands of users who are not administrators
    (REALTIME_ADMIN_COMMAND_RATE). One per consumer class, naming its message types."""

    __slots__ = ("subscription_messages", "admin_messages")

    def __init__(self, *, subscription_messages=(), admin_messages=()):
        self.subscription_messages = frozenset(subscription_messages)
        self.admin_messages = frozenset(admin_messages)

    async def check(self, principal, kind):
        """Count a `kind` message of the user's; raises RATE_LIMITED past a limit."""
        limits = settings.REALTIME
        checks = [("msg", limits["MESSAGE_RATE"])]
        if kind in self.subscription_messages:
            checks.append(("sub", limits["SUBSCRIPTION_RATE"]))
        if kind in self.admin_messages and not principal.has_perm(VIEW_CONNECTIONS):
            checks.append(("admin", limits["ADMIN_COMMAND_RATE"]))
        window = limits["RATE_WINDOW"]
        try:
            # Counted in turn until one is past its limit, in one round trip on Redis.
            counts, left = await get_hub().store.hits(
                [(f"{name}:{principal.user_id}", limit) for name, limit in checks], window
            )
        except Exception as exc:
            # The shared store (Redis) is down: serve on rather than refuse every
            # message; the limits come back with it.
            logger.warning("rate limits unavailable: %s", exc)
            return
        for (_name, limit), count in zip(checks, counts, strict=False):
            if count > limit:
                raise ProtocolError(
                    "RATE_LIMITED",
                    f"Rate limit exceeded. Try again in {int(left) + 1} seconds.",
                    {"limit": limit, "window": int(window), "retry_after": int(left) + 1},
                )
