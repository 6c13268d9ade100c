"""The interface between the hub and the sockets it serves.

Each `Connection` the hub fans out to has an `owner`, the socket's side: a `HubMember`.
The hub reads the attributes below in its periodic sweeps and sends the socket its
notices by calling the methods, each in a task of its own. Nothing else of the owner is
the hub's business (`tests/realtime/test_members.py` holds the hub to this list). The
consumers' implementation: `realtime.consumers.membership.SocketMembership`.
"""

from datetime import datetime
from typing import Protocol, runtime_checkable


@runtime_checkable
class HubMember(Protocol):
    """What the hub reads of a connection's owner, and the notices it sends it.

    A notice that comes while the socket is already closing does nothing."""

    #: True once the socket is on its way out: the sweeps leave it alone.
    closing: bool
    #: When the socket's token runs out; None for a session or once told. Once a
    #: second the hub sets it to None and calls `token_expired()` for each one passed.
    token_expires_at: datetime | None
    #: The session key that authenticated the socket (None for a token): the periodic
    #: access check calls `session_ended()` once the session is gone.
    session_key: str | None
    #: Its digest, as `realtime.control.end_session` names a logged-out session.
    session_hash: str | None
    #: True while `access_changed()` runs: the access check does not start another.
    rechecking: bool

    async def access_changed(self) -> None:
        """The user's roles, permissions or active flag changed (`recheck_user`, or a
        stamp that moved): re-read the user; close if deactivated."""

    async def disconnected(self, reason: str | None) -> None:
        """An administrator disconnected the user (`disconnect_user`): close (1008)."""

    async def token_expired(self) -> None:
        """The socket's token ran out: `session_expired`, then close (1008)."""

    async def session_ended(self) -> None:
        """The session that authenticated the socket ended: close (1008)."""

    async def send_stalled(self) -> None:
        """The client has read nothing for REALTIME_SEND_TIMEOUT with a full buffer:
        drop its TCP connection."""

    async def server_restart(self) -> None:
        """The server is stopping (SIGTERM): `server_shutdown`, then close (1012)."""
