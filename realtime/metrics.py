"""What the hub counts, and this process's figures as the heartbeat, `/ws/info` and
`/metrics` read them (`realtime.monitoring` serves them)."""

import asyncio
import bisect
import json
import logging
import os
import time
from collections import defaultdict

from realtime import envelopes
from realtime.transport import ORIGIN

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class HubMetrics:
    """The hub's counters and delivery latency histogram, and the process summary.

    `connections` is the hub's {connection id: Connection}, `store` the shared store
    (`realtime.store`) that `/ws/info` answers go through."""

    def __init__(self, connections, store):
        self.connections = connections
        self.store = store
        self.started_at = time.time()
        self.counters = defaultdict(int)
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0

    def observe_latency(self, now, events):
        """Events handed to a socket at `now`: counted, and their latency since publishing.
        Every connection calls it for every frame of events it writes."""
        self.counters["events_delivered"] += len(events)
        counts = self.latency_counts
        total = 0.0
        for event in events:
            seconds = now - event.published_at
            total += seconds
            counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += total

    def count_closed(self, connection):
        """What a closed socket sent and received still counts in `/metrics`' totals."""
        self.counters["messages_sent_by_closed"] += connection.messages_sent
        self.counters["messages_received_by_closed"] += connection.messages_received

    def summary(self, layer_healthy):
        """This process at a glance: what every process's heartbeat shares, `/metrics`."""
        connections = self.connections.values()
        return {
            "origin": ORIGIN,
            "pid": os.getpid(),
            "started_at": envelopes.iso_timestamp(self.started_at),
            "layer_healthy": layer_healthy,
            "connections": len(self.connections),
            "queued_messages": sum(c.queue_depth for c in connections),
            "events_dropped": sum(c.dropped for c in connections),
            "messages_sent": self.counters["messages_sent_by_closed"]
            + sum(c.messages_sent for c in connections),
            "messages_received": self.counters["messages_received_by_closed"]
            + sum(c.messages_received for c in connections),
            "counters": dict(self.counters),
        }

    def connection_stats(self):
        """Every local connection, as `/ws/info` lists them."""
        return _connection_stats(self.connections.values())

    async def report_connections(self, request_id):
        """Answer a `/ws/info` request of another process with this one's connections.
        Gathered and encoded in a thread: thousands of sockets take milliseconds, and the
        loop keeps delivering meanwhile. Only asked for, never sent on a timer."""
        connections = list(self.connections.values())
        try:
            encoded = await asyncio.to_thread(_encoded_stats, connections)
            await self.store.put_report(request_id, ORIGIN, encoded)
        except Exception as exc:
            logger.warning("could not report connections for /ws/info: %s", exc)


def _connection_stats(connections):
    return [connection.stats() for connection in connections]


def _encoded_stats(connections):
    return json.dumps(_connection_stats(connections))
