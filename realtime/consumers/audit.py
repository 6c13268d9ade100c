"""The audit rows a socket writes (realtime/auditing.py writes them)."""

import logging

from realtime import auditing

logger = logging.getLogger(__name__)


class SocketAudit:
    """One socket's audit rows, each naming its client_id: those of its own session
    (connect, subscription and filter changes, disconnect) and those of its requests."""

    __slots__ = ("scope", "client_id")

    def __init__(self, scope, client_id):
        self.scope = scope
        self.client_id = client_id

    def session(self, principal, action, details):
        """A row of the socket's own session, written in the background and not
        published live (realtime/auditing.py says why)."""
        auditing.session_writer().add(
            action, principal, {"client_id": self.client_id, **details}, self.scope
        )

    async def request(self, principal, action, details):
        """A row written before this returns, and published live."""
        try:
            await auditing.writer().write(
                action, principal, {"client_id": self.client_id, **details}, self.scope
            )
        except Exception:
            logger.exception("could not write the audit row for %s", action)
