"""Event types of the health and metrics monitors."""

from realtime import catalogue
from realtime.catalogue import RECEIVE_SYSTEM, Family

for name, family, priority, description in [
    ("system_status", Family.THREATLENS, 3, "A component's status (threatlens-ws.md)."),
    ("health_check", Family.THREATLENS, 2, "Overall health with components (threatlens-ws.md)."),
    ("health_update", Family.SYSTEM, 5, "A component's health (HealthEvent, unified-ws.md)."),
    ("health_alert", Family.SYSTEM, 8, "A component turned unhealthy."),
    ("system_metrics", Family.SYSTEM, 4, "Host metrics (SystemMetricsEvent, unified-ws.md)."),
]:
    catalogue.declare(
        name, family=family, priority=priority, permission=RECEIVE_SYSTEM, description=description
    )
