"""What the hub tells operators: `/ws/info`, `/realtime/status` and `/metrics` data.

Views run in threads; `async_to_sync` runs these coroutines on the server's event loop,
where this process's hub lives, so its figures are read live and never from another thread.
Other processes are read from the store: their heartbeat summaries, and for `/ws/info`
the connection lists they send when asked.
"""

import asyncio
import logging
import time
import uuid

from django.conf import settings
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from realtime import transport
from realtime.groups import CONTROL_GROUP
from realtime.hub import existing_hub
from realtime.metrics import LATENCY_BUCKETS
from realtime.store import make_store
from realtime.transport import ORIGIN

logger = logging.getLogger(__name__)


REPORT_TIMEOUT = 2  # seconds `/ws/info` waits for the other processes' connection lists
REPORT_POLL = 0.05


async def cluster_summaries():
    """One summary per live server process (this one read live, others from their last
    heartbeat). While the store is unreachable, only this process's: the view still answers."""
    hub = existing_hub()
    store = hub.store if hub is not None else make_store()
    try:
        others = await store.all_summaries()
    except Exception as exc:
        logger.warning("other processes' summaries unavailable: %s", exc)
        others = []
    summaries = [s for s in others if s.get("origin") != ORIGIN]
    if hub is not None:
        summaries.append(hub.summary())
    return summaries


async def connections_info():
    """`/ws/info`: every connection across all server processes, totals and limits.

    Other processes list their connections when asked (a control message through the
    layer; answers come back through the store), so nobody pays for the lists of
    thousands of sockets between requests. A process that has not answered within
    REPORT_TIMEOUT is shown with its count, `connections_listed: false`."""
    hub = existing_hub()
    summaries = await cluster_summaries()
    others = [s["origin"] for s in summaries if s["origin"] != ORIGIN]
    listed = await _connection_reports(others) if others else {}
    if hub is not None:
        listed[ORIGIN] = hub.connection_stats()
    connections = [c for s in summaries for c in listed.get(s["origin"], ())]
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
                    "connections",
                    "queued_messages",
                    "events_dropped",
                    "counters",
                )
            }
            | {"connections_listed": s["origin"] in listed}
            for s in summaries
        ],
        "totals": {
            "connections": sum(s["connections"] for s in summaries),
            "users": len({c["user_id"] for c in connections}),
            "queued_messages": sum(s["queued_messages"] for s in summaries),
            "events_dropped": sum(s["events_dropped"] for s in summaries),
        },
        "limits": {
            "max_connections": settings.REALTIME["MAX_CONNECTIONS"],
            "max_connections_per_user": settings.REALTIME["MAX_CONNECTIONS_PER_USER"],
            "queue_size": settings.REALTIME["QUEUE_SIZE"],
            "max_frame_bytes": settings.REALTIME["MAX_FRAME_BYTES"],
        },
        "connections": connections,
    }


async def _connection_reports(origins):
    """{origin: its connections} from the processes in `origins` that answer in time."""
    hub = existing_hub()
    store = hub.store if hub is not None else make_store()
    request_id = uuid.uuid4().hex
    reports = {}
    try:
        await transport.shared_layer().group_send(
            CONTROL_GROUP,
            {
                "type": "hub.control",
                "action": "report_connections",
                "request_id": request_id,
                "origin": ORIGIN,
            },
        )
        async with asyncio.timeout(REPORT_TIMEOUT):
            while not set(origins) <= set(reports):
                await asyncio.sleep(REPORT_POLL)
                reports = await store.get_reports(request_id)
    except TimeoutError:
        logger.warning("/ws/info: no connection list from %s", sorted(set(origins) - set(reports)))
    except Exception as exc:
        logger.warning("/ws/info: other processes' connection lists unavailable: %s", exc)
    return reports


async def hub_status():
    """The realtime part of `/realtime/status`: no user data."""
    summaries = await cluster_summaries()
    hub = existing_hub()
    return {
        "processes": len(summaries),
        "connections": sum(s["connections"] for s in summaries),
        "queued_messages": sum(s["queued_messages"] for s in summaries),
        "events_dropped": sum(s["events_dropped"] for s in summaries),
        "this_process": {
            "hub_running": hub is not None,
            "layer_healthy": hub.layer_healthy if hub else None,
            "uptime": round(time.time() - hub.started_at, 1) if hub else 0,
        },
    }


_HUB_FIGURES = [
    # name, type, help, where the figure is: ("summary" | "counters", key)
    ("threatlens_ws_connections", "gauge", "Open WebSocket connections.",
     ("summary", "connections")),
    ("threatlens_ws_messages_in_total", "counter", "Frames received from clients.",
     ("summary", "messages_received")),
    ("threatlens_ws_messages_out_total", "counter", "Frames sent to clients.",
     ("summary", "messages_sent")),
    ("threatlens_ws_events_received_total", "counter", "Events received by the hub.",
     ("counters", "events_received")),
    ("threatlens_ws_events_dropped_total", "counter", "Events shed from full outbound queues.",
     ("summary", "events_dropped")),
    ("threatlens_ws_queue_depth", "gauge", "Events waiting in outbound queues.",
     ("summary", "queued_messages")),
    ("threatlens_ws_events_replayed_total", "counter", "Events sent by replay.",
     ("counters", "events_replayed")),
    ("threatlens_ws_stalled_closed_total", "counter",
     "Sockets closed because their client read nothing past REALTIME_SEND_TIMEOUT.",
     ("counters", "stalled_sockets_closed")),
]  # fmt: skip


class HubCollector:
    """The hub's figures as Prometheus metric families (a `prometheus_client` collector),
    from a summary read on the event loop (`Hub.summary()`)."""

    def __init__(self, summary, hub):
        self.summary, self.hub = summary, hub

    def collect(self):
        summary, hub = self.summary, self.hub
        for name, kind, help_text, (where, key) in _HUB_FIGURES:
            figures = summary if where == "summary" else summary["counters"]
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(name, help_text, value=figures.get(key, 0))
        yield GaugeMetricFamily(
            "threatlens_ws_layer_up",
            "1 when the hub receives from the channel layer.",
            value=1 if summary["layer_healthy"] else 0,
        )
        counts = hub.metrics.latency_counts if hub else [0] * (len(LATENCY_BUCKETS) + 1)
        buckets, cumulative = [], 0
        for bound, count in zip(LATENCY_BUCKETS, counts, strict=False):
            cumulative += count
            buckets.append((str(bound), cumulative))
        buckets.append(("+Inf", cumulative + counts[-1]))
        yield HistogramMetricFamily(
            "threatlens_ws_delivery_latency_seconds",
            "Time from publish to the frame being written.",
            buckets=buckets,
            sum_value=hub.metrics.latency_sum if hub else 0,
        )


# Other apps' /metrics figures: `prometheus_client` collectors (objects whose `collect()`
# yields metric families, read at scrape time), registered in their AppConfig.ready().
_COLLECTORS = []


def register_metrics(collector):
    """Add `collector` to `/metrics` (once per collector)."""
    if collector not in _COLLECTORS:
        _COLLECTORS.append(collector)


class _Guarded:
    """One broken collector must not take the hub's own metrics down with it."""

    def __init__(self, collector):
        self.collector = collector

    def collect(self):
        try:
            families = list(self.collector.collect())
        except Exception:
            logger.exception("metrics collector %r failed", self.collector)
            return []
        return families


async def metrics_text():
    """This process's `/metrics` in the Prometheus text format (0.0.4)."""
    hub = existing_hub()
    summary = (
        hub.summary()
        if hub
        else {
            "counters": {},
            "connections": 0,
            "messages_sent": 0,
            "messages_received": 0,
            "events_dropped": 0,
            "queued_messages": 0,
            "layer_healthy": None,
        }
    )
    # A registry per scrape: the hub's figures are the ones just read on the event loop.
    # Collectors read in-memory counters only (no database), so they run right here.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(summary, hub))
    for collector in _COLLECTORS:
        registry.register(_Guarded(collector))
    return generate_latest(registry).decode()


def _now():
    from realtime.envelopes import now_iso

    return now_iso()
