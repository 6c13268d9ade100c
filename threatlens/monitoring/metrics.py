"""Host metrics for `system_metrics` (SystemMetricsEvent of unified-ws.md), from psutil.

The DNS part comes from a provider the DNS app registers (`register_dns_metrics_provider`),
so this module never imports it; with no provider the DNS figures are zeros.
"""

import logging
import threading
from collections.abc import Callable
from typing import TypedDict

import psutil

from realtime.envelopes import now_iso

logger = logging.getLogger(__name__)


class CpuMetrics(TypedDict):
    usage_percent: float
    load_average: list[float]


class MemoryMetrics(TypedDict):
    total: int
    used: int
    available: int
    usage_percent: float


class DiskMetrics(TypedDict):
    total: int
    used: int
    available: int
    usage_percent: float


class NetworkMetrics(TypedDict):
    bytes_sent: int
    bytes_received: int
    packets_sent: int
    packets_received: int


class DnsMetrics(TypedDict):
    """SystemMetricsEvent's three DNS figures, then counts since the previous sample
    (named's statistics channel; an addition to unified-ws.md, see docs/bind.md)."""

    queries_per_second: float
    active_zones: int
    total_records: int
    queries: int
    nxdomain: int
    servfail: int
    rpz_hits: int


class Metrics(TypedDict):
    cpu: CpuMetrics
    memory: MemoryMetrics
    disk: DiskMetrics
    network: NetworkMetrics
    dns: DnsMetrics


class SystemMetricsData(TypedDict):
    """The `system_metrics` data (SystemMetricsEvent)."""

    metrics: Metrics
    timestamp: str


DNS_ZEROS: DnsMetrics = {
    "queries_per_second": 0.0,
    "active_zones": 0,
    "total_records": 0,
    "queries": 0,
    "nxdomain": 0,
    "servfail": 0,
    "rpz_hits": 0,
}

_dns_provider: Callable[[], dict] | None = None


def register_dns_metrics_provider(provider):
    """Let the DNS app supply the DnsMetrics figures (missing ones are zeros); `None`
    unregisters. The provider is called from a worker thread at every collection and may
    use the ORM; it should be quick (cached counts)."""
    global _dns_provider
    _dns_provider = provider


def dns_metrics(provider=None) -> DnsMetrics:
    provider = provider or _dns_provider
    if provider is None:
        return dict(DNS_ZEROS)
    try:
        values = provider() or {}
        figures = {
            name: int(values.get(name, 0) or 0)
            for name in DNS_ZEROS
            if name != "queries_per_second"
        }
        return {
            "queries_per_second": round(float(values.get("queries_per_second", 0) or 0), 2),
            **figures,
        }
    except Exception:
        # Metrics must keep flowing when the DNS side has a problem; the DNS health check
        # is where that problem belongs.
        logger.exception("DNS metrics provider failed; reporting zeros")
        return dict(DNS_ZEROS)


class NetworkCounters:
    """Network traffic since the previous sample (all interfaces). The first sample has
    nothing to compare with and reports zeros; a counter that went backwards (interface
    reset) counts as zero rather than negative."""

    FIELDS = (
        ("bytes_sent", "bytes_sent"),
        ("bytes_received", "bytes_recv"),
        ("packets_sent", "packets_sent"),
        ("packets_received", "packets_recv"),
    )

    def __init__(self, read=None):
        self._read = read or (lambda: psutil.net_io_counters(nowrap=True))
        self._previous = None
        self._lock = threading.Lock()

    def delta(self) -> NetworkMetrics:
        current = self._read()
        with self._lock:
            previous, self._previous = self._previous, current
        if previous is None or current is None:
            return {name: 0 for name, _ in self.FIELDS}
        return {
            name: max(0, int(getattr(current, attr)) - int(getattr(previous, attr)))
            for name, attr in self.FIELDS
        }


class CpuSampler:
    """cpu_percent since the previous call; the first call measures over 0.1 s instead of
    returning psutil's meaningless first 0.0."""

    def __init__(self):
        self._primed = False

    def usage(self):
        if not self._primed:
            self._primed = True
            return float(psutil.cpu_percent(interval=0.1))
        return float(psutil.cpu_percent(interval=None))


_default_network = NetworkCounters()
_default_cpu = CpuSampler()


def collect_system_metrics(*, disk_path="/", network=None, cpu=None, dns_provider=None):
    """One SystemMetricsEvent: cpu, memory, disk (of `disk_path`), network deltas since
    the previous call, and DNS figures. Blocking (about 0.1 s on the first call): call it
    from a worker thread in async code."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(disk_path)
    try:
        load = [round(value, 2) for value in psutil.getloadavg()]
    except (AttributeError, OSError):
        load = [0.0, 0.0, 0.0]
    data: SystemMetricsData = {
        "metrics": {
            "cpu": {
                "usage_percent": round((cpu or _default_cpu).usage(), 1),
                "load_average": load,
            },
            "memory": {
                "total": int(memory.total),
                "used": int(memory.used),
                "available": int(memory.available),
                "usage_percent": round(float(memory.percent), 1),
            },
            "disk": {
                "total": int(disk.total),
                "used": int(disk.used),
                "available": int(disk.free),
                "usage_percent": round(float(disk.percent), 1),
            },
            "network": (network or _default_network).delta(),
            "dns": dns_metrics(dns_provider),
        },
        "timestamp": now_iso(),
    }
    return data
