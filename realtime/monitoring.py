"""What the hub tells operators: `/ws/info`, `/realtime/status` and `/metrics` data.

Views run in threads; `async_to_sync` runs these coroutines on the server's event loop,
where this process's hub lives, so its figures are read live and never from another thread.
"""

import logging
import time

from django.conf import settings

from realtime.hub import LATENCY_BUCKETS, existing_hub
from realtime.store import make_store
from realtime.transport import ORIGIN

logger = logging.getLogger(__name__)


async def cluster_snapshots():
    """One snapshot per live server process (this one read live, others from the store).
    While the store is unreachable, only this process's: the view still answers."""
    hub = existing_hub()
    store = hub.store if hub is not None else make_store()
    try:
        others = await store.all_snapshots()
    except Exception as exc:
        logger.warning("other processes' snapshots unavailable: %s", exc)
        others = []
    snapshots = [s for s in others if s.get("origin") != ORIGIN]
    if hub is not None:
        snapshots.append(hub.snapshot())
    return snapshots


async def connections_info():
    """`/ws/info`: every connection across all server processes, totals and limits."""
    snapshots = await cluster_snapshots()
    connections = [c for s in snapshots for c in s["connections"]]
    return {
        "server_time": _now(),
        "processes": [
            {
                k: s[k]
                for k in (
                    "origin",
                    "pid",
                    "started_at",
                    "layer_healthy",
                    "queued_messages",
                    "events_dropped",
                    "counters",
                )
            }
            | {"connections": len(s["connections"])}
            for s in snapshots
        ],
        "totals": {
            "connections": len(connections),
            "users": len({c["user_id"] for c in connections}),
            "queued_messages": sum(s["queued_messages"] for s in snapshots),
            "events_dropped": sum(s["events_dropped"] for s in snapshots),
        },
        "limits": {
            "max_connections": settings.REALTIME["MAX_CONNECTIONS"],
            "max_connections_per_user": settings.REALTIME["MAX_CONNECTIONS_PER_USER"],
            "queue_size": settings.REALTIME["QUEUE_SIZE"],
            "max_frame_bytes": settings.REALTIME["MAX_FRAME_BYTES"],
        },
        "connections": connections,
    }


async def hub_status():
    """The realtime part of `/realtime/status`: no user data."""
    snapshots = await cluster_snapshots()
    hub = existing_hub()
    return {
        "processes": len(snapshots),
        "connections": sum(len(s["connections"]) for s in snapshots),
        "queued_messages": sum(s["queued_messages"] for s in snapshots),
        "events_dropped": sum(s["events_dropped"] for s in snapshots),
        "this_process": {
            "hub_running": hub is not None,
            "layer_healthy": hub.layer_healthy if hub else None,
            "uptime": round(time.time() - hub.started_at, 1) if hub else 0,
        },
    }


def prometheus_text(snapshot, hub):
    """This process's metrics in the Prometheus text format (0.0.4)."""
    counters = snapshot["counters"]
    connections = snapshot["connections"]
    lines = []

    def metric(name, kind, help_text, value, labels=""):
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name}{labels} {value}")

    metric("threatlens_ws_connections", "gauge", "Open WebSocket connections.", len(connections))
    metric(
        "threatlens_ws_messages_in_total",
        "counter",
        "Frames received from clients.",
        sum(c["messages_received"] for c in connections),
    )
    metric(
        "threatlens_ws_messages_out_total",
        "counter",
        "Frames sent to clients.",
        sum(c["messages_sent"] for c in connections),
    )
    metric(
        "threatlens_ws_events_received_total",
        "counter",
        "Events received by the hub.",
        counters.get("events_received", 0),
    )
    metric(
        "threatlens_ws_events_dropped_total",
        "counter",
        "Events shed from full outbound queues.",
        snapshot["events_dropped"],
    )
    metric(
        "threatlens_ws_queue_depth",
        "gauge",
        "Events waiting in outbound queues.",
        snapshot["queued_messages"],
    )
    metric(
        "threatlens_ws_events_replayed_total",
        "counter",
        "Events sent by replay.",
        counters.get("events_replayed", 0),
    )
    metric(
        "threatlens_ws_layer_up",
        "gauge",
        "1 when the hub receives from the channel layer.",
        1 if snapshot["layer_healthy"] else 0,
    )
    name = "threatlens_ws_delivery_latency_seconds"
    lines.append(f"# HELP {name} Time from publish to the frame being written.")
    lines.append(f"# TYPE {name} histogram")
    cumulative = 0
    counts = hub.latency_counts if hub else [0] * (len(LATENCY_BUCKETS) + 1)
    for bound, count in zip(LATENCY_BUCKETS, counts, strict=False):
        cumulative += count
        lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
    cumulative += counts[-1]
    lines.append(f'{name}_bucket{{le="+Inf"}} {cumulative}')
    lines.append(f"{name}_sum {hub.latency_sum if hub else 0}")
    lines.append(f"{name}_count {cumulative}")
    return "\n".join(lines) + "\n"


async def metrics_text():
    hub = existing_hub()
    snapshot = (
        hub.snapshot()
        if hub
        else {
            "counters": {},
            "connections": [],
            "events_dropped": 0,
            "queued_messages": 0,
            "layer_healthy": None,
        }
    )
    return prometheus_text(snapshot, hub)


def _now():
    from realtime.envelopes import now_iso

    return now_iso()
