"""History for the overview's charts, from the stored event log (`realtime.Event`, kept
for replay), so a page opened now draws the last minutes instead of an empty chart.

- Security events are counted by arrival (the time the server published them), per
  severity band, in fixed buckets: a replayed log from last week counts now, when it came.
- System metrics are the `system_metrics` events' CPU and memory, at their own timestamps.

Only broadcast events are read (no per-user recipients), and each series needs the
permission that receiving it live needs.
"""

from datetime import timedelta

from django.utils import timezone

from realtime.models import Event

RECEIVE_SECURITY = "realtime.receive_security"
RECEIVE_SYSTEM = "realtime.receive_system"
MAX_METRIC_POINTS = 500


def band(priority):
    if priority >= 9:
        return "critical"
    if priority >= 7:
        return "high"
    if priority >= 4:
        return "medium"
    return "low"


def chart_history(user, *, minutes=10, bucket_seconds=30, now=None):
    now = now or timezone.now()
    since = now - timedelta(minutes=minutes)
    broadcast = Event.objects.filter(created_at__gte=since, recipient_users__isnull=True)
    result = {"since": since, "bucket_seconds": bucket_seconds}
    if user.has_perm(RECEIVE_SECURITY):
        counts = {}
        rows = broadcast.filter(event_type="security_event").values_list("created_at", "priority")
        for created_at, priority in rows:
            start = int(created_at.timestamp() // bucket_seconds) * bucket_seconds
            bucket = counts.setdefault(start, {"critical": 0, "high": 0, "medium": 0, "low": 0})
            bucket[band(priority)] += 1
        result["security_events"] = [
            {"start": start, **bucket} for start, bucket in sorted(counts.items())
        ]
    if user.has_perm(RECEIVE_SYSTEM):
        points = []
        rows = (
            broadcast.filter(event_type="system_metrics")
            .order_by("-created_at")
            .values_list("created_at", "data")[:MAX_METRIC_POINTS]
        )
        for created_at, data in reversed(rows):
            metrics = (data or {}).get("metrics") or {}
            points.append(
                {
                    "at": (data or {}).get("timestamp") or created_at.isoformat(),
                    "cpu": (metrics.get("cpu") or {}).get("usage_percent"),
                    "memory": (metrics.get("memory") or {}).get("usage_percent"),
                }
            )
        result["system"] = points
    return result
