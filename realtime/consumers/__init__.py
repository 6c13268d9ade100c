"""WebSocket consumers: the hub socket (`/ws`, threatlens-ws.md and unified-ws.md in one),
its legacy per-topic paths, and the base that `/ws/incidents` builds on.

Consumers stay thin: parse and validate a frame, look up its handler, run sync work
through `database_sync_to_async`, reply. Events never pass through a consumer: the
process hub puts them on the connection's queue directly. One module per job:

- `protocol`: frames and request fields read and checked, error and close codes
- `messages`: `MessageConsumer`, messages to their handlers, replies and refusals out
- `socket`: `SocketConsumer`, an authenticated hub socket from handshake to close
- `authentication`: `SocketAuthenticator`, the four ways to authenticate, failures
- `limits`: `admit`, `ConnectionSlot` and `RateLimits`
- `membership`: `SocketMembership`, the socket as the hub's member (`realtime.members`)
- `resume`: `Resume`, where a returning client left off and what it missed
- `audit`: `SocketAudit`, the socket's audit rows
- `hub_socket`: `HubConsumer` and `LegacyHubConsumer` (realtime/compat.py adds the DNS
  frontends' requests and envelope)
"""

from realtime.consumers.hub_socket import LEGACY_TOPICS, HubConsumer, LegacyHubConsumer
from realtime.consumers.protocol import ProtocolError
from realtime.consumers.socket import SocketConsumer

__all__ = ["LEGACY_TOPICS", "HubConsumer", "LegacyHubConsumer", "ProtocolError", "SocketConsumer"]
