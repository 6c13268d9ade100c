"""`/ws`, `/ws/<client_id>` and the legacy per-topic paths: the ThreatLens event stream
and the unified socket (threatlens-ws.md and unified-ws.md in one)."""

import asyncio
import time
from importlib import metadata

from realtime import access, catalogue, envelopes
from realtime.catalogue import VIEW_CONNECTIONS, Family
from realtime.consumers.limits import RateLimits
from realtime.consumers.protocol import CLOSE_POLICY, invalid, string_list
from realtime.consumers.socket import SocketConsumer
from realtime.filters import EventFilter, FilterError
from realtime.hub import get_hub

SERVER_NAME = "ThreatLens WebSocket Server"
try:
    SERVER_VERSION = metadata.version("threatlens")
except metadata.PackageNotFoundError:  # running from a checkout that was not installed
    SERVER_VERSION = "0.0.0"

SUBSCRIPTION_MESSAGES = frozenset(
    {"subscribe", "subscribe_events", "unsubscribe", "unsubscribe_events"}
)
ADMIN_MESSAGES = frozenset({"get_stats", "get_status"})

LEGACY_TOPICS = {
    "health": ("health_update", "health_alert", "system_metrics", "system_status", "health_check"),
    "dns_management": f"family:{Family.DNS}",
    "security": f"family:{Family.SECURITY}",
    "system": f"family:{Family.SYSTEM}",
    "admin": (f"family:{Family.USER}", "user_action", "config_change", "bind_reload"),
}


class HubConsumer(SocketConsumer):
    """`/ws` and `/ws/<client_id>`: the ThreatLens event stream and the unified socket."""

    handlers = {
        "subscribe": "handle_subscribe",
        "subscribe_events": "handle_subscribe",
        "unsubscribe": "handle_unsubscribe",
        "unsubscribe_events": "handle_unsubscribe",
        "get_subscriptions": "handle_get_subscriptions",
        "set_filter": "handle_set_filter",
        "clear_filter": "handle_clear_filter",
        "get_status": "handle_get_status",
        "get_stats": "handle_get_stats",
        "ping": "handle_ping",
        "pong": "handle_pong",
        "auth": "handle_auth",
    }
    rate_limits = RateLimits(
        subscription_messages=SUBSCRIPTION_MESSAGES, admin_messages=ADMIN_MESSAGES
    )

    async def greet(self):
        connection = self.connection
        server_info = {"name": SERVER_NAME, "version": SERVER_VERSION}
        await self.send_reply(
            "connection_established",
            {
                "client_id": self.client_id,
                "connection_id": connection.connection_id,
                "server_info": server_info,
                "user": self.principal.as_dict(),
                "subscriptions": sorted(connection.subscriptions),
                "default_subscriptions": sorted(self.default_subscriptions()),
                "filter": None,
            },
            client_id=self.client_id,
            server_info=server_info,
        )

    def default_subscriptions(self):
        return access.default_subscriptions(self.principal, self.connection.allowed)

    async def handle_subscribe(self, data, request_id):
        names = string_list(data, "event_types")
        replace = data.get("replace_existing", False)
        if not isinstance(replace, bool):
            raise invalid("replace_existing must be true or false")
        accepted, refused = self.check_event_types(names)
        connection = self.connection
        before = connection.subscriptions
        after = set(accepted) if replace else set(before) | set(accepted)
        get_hub().set_subscriptions(connection, after)
        await self.subscription_reply(
            request_id,
            added=sorted(connection.subscriptions - before),
            removed=sorted(before - connection.subscriptions),
            refused=refused,
        )

    async def handle_unsubscribe(self, data, request_id):
        names = string_list(data, "event_types")
        unknown = [name for name in names if not catalogue.exists(name)]
        connection = self.connection
        before = connection.subscriptions
        get_hub().set_subscriptions(connection, before - set(names))
        refused = [_refusal(name, "SUBSCRIPTION_FAILED", "Unknown event type") for name in unknown]
        await self.subscription_reply(
            request_id,
            removed=sorted(before - connection.subscriptions),
            refused=refused,
        )

    def check_event_types(self, names):
        accepted, refused = [], []
        for name in dict.fromkeys(names):
            if not catalogue.exists(name):
                refused.append(_refusal(name, "SUBSCRIPTION_FAILED", "Unknown event type"))
            elif name not in self.connection.allowed:
                refused.append(
                    _refusal(name, "PERMISSION_DENIED", "Your role may not receive this event type")
                )
            else:
                accepted.append(name)
        if self.connection.debug:
            for name in accepted:
                self.debug_decision("subscribed", name, "allowed for the role")
            for item in refused:
                self.debug_decision("refused", item["event_type"], item["message"])
        return accepted, refused

    def debug_decision(self, decision, event_type, reason):
        frame = envelopes.reply(
            "debug", {"decision": decision, "event_type": event_type, "reason": reason}
        )
        asyncio.get_running_loop().create_task(self.connection.send_quietly(frame))

    async def subscription_reply(self, request_id, *, added=(), removed=(), refused=()):
        subscriptions = sorted(self.connection.subscriptions)
        data = {"subscriptions": subscriptions, "refused": list(refused)}
        if added or not removed:
            data["added"] = list(added)
        if removed:
            data["removed"] = list(removed)
        await self.send_reply(
            "subscription_updated", data, request_id=request_id, subscriptions=subscriptions
        )
        for code in ("SUBSCRIPTION_FAILED", "PERMISSION_DENIED"):
            names = [item["event_type"] for item in refused if item["error_code"] == code]
            if names:
                message = (
                    "Unknown event types: "
                    if code == "SUBSCRIPTION_FAILED"
                    else "Not permitted for your role: "
                ) + ", ".join(names)
                await self.send_error(
                    code, message, details={"event_types": names}, request_id=request_id
                )
        self.audit_log.session(
            self.principal,
            "realtime.subscription_changed",
            {"subscriptions": subscriptions, "added": list(added), "removed": list(removed)},
        )

    async def handle_get_subscriptions(self, data, request_id):
        await self.send_reply(
            "response",
            {
                "subscriptions": sorted(self.connection.subscriptions),
                "default_subscriptions": sorted(self.default_subscriptions()),
                "available": sorted(self.connection.allowed),
            },
            request_id=request_id,
        )

    async def handle_set_filter(self, data, request_id):
        try:
            event_filter = EventFilter.parse(data)
        except FilterError as exc:
            raise invalid(f"Invalid filter: {exc}") from None
        self.connection.filter = event_filter
        await self.filter_reply("set", event_filter.as_dict(), request_id)

    async def handle_clear_filter(self, data, request_id):
        self.connection.filter = None
        await self.filter_reply("cleared", None, request_id)

    async def filter_reply(self, action, current, request_id):
        await self.send_reply(
            "filter_updated", {"filter": current, "action": action}, request_id=request_id
        )
        details = {"action": action, "filter": current}
        self.audit_log.session(self.principal, "realtime.filter_changed", details)

    async def handle_get_status(self, data, request_id):
        hub = get_hub()
        connection = self.connection
        await self.send_reply(
            "status_response",
            {
                "client_info": {
                    "client_id": self.client_id,
                    "connection_id": connection.connection_id,
                    "user": self.principal.as_dict(),
                    "connected_at": envelopes.iso_timestamp(connection.connected_at),
                    "subscriptions": sorted(connection.subscriptions),
                    "filter": connection.filter.as_dict() if connection.filter else None,
                    "messages_sent": connection.messages_sent,
                    "messages_received": connection.messages_received,
                    "queue_depth": connection.queue_depth,
                },
                "server": {
                    "name": SERVER_NAME,
                    "version": SERVER_VERSION,
                    "process_connections": len(hub.connections),
                    "queued_messages": sum(c.queue_depth for c in hub.connections.values()),
                    "channel_layer": "healthy" if hub.layer_healthy else "unavailable",
                    "uptime": round(time.time() - hub.started_at, 1),
                },
                "server_time": envelopes.now_iso(),
            },
            request_id=request_id,
        )

    async def handle_get_stats(self, data, request_id):
        stats = self.connection.stats()
        await self.send_reply("response", stats, request_id=request_id)


class LegacyHubConsumer(HubConsumer):
    """`/ws/<topic>/<user_id>`: the hub with one topic preset, and a deprecation notice."""

    async def establish(self, credentials):
        principal = credentials.principal
        path_user = self.scope["url_route"]["kwargs"]["user_id"]
        if str(principal.user_id) != path_user and not principal.has_perm(VIEW_CONNECTIONS):
            await self.refuse(
                "PERMISSION_DENIED", "This socket belongs to another user", CLOSE_POLICY
            )
            return
        await super().establish(credentials)

    def initial_subscriptions(self):
        topic = self.scope["url_route"]["kwargs"]["topic"]
        items = LEGACY_TOPICS[topic]
        items = (items,) if isinstance(items, str) else items
        return access.expand(items, self.connection.allowed)

    async def greet(self):
        await super().greet()
        topic = self.scope["url_route"]["kwargs"]["topic"]
        await self.send_reply(
            "deprecation_warning",
            {
                "message": f"/ws/{topic}/<user_id> is deprecated: connect to /ws and "
                "subscribe to the event types you need.",
                "replacement": "/ws",
                "event_types": sorted(self.connection.subscriptions),
            },
        )


def _refusal(name, code, message):
    return {"event_type": name, "error_code": code, "message": message}
