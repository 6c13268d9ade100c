"""Event types of detection and incident response."""

from incidents.security_events import READ_PIPELINE_DATA
from realtime import catalogue
from realtime.catalogue import RECEIVE_SECURITY, Audience, Family

VIEW_ALL_INCIDENTS = "incidents.view_all_incidents"

catalogue.declare(
    "security_event",
    family=Family.THREATLENS,
    priority=5,
    permission=READ_PIPELINE_DATA,
    description="A security event from the log pipeline; priority = severity.",
)
catalogue.declare(
    "processing_update",
    family=Family.THREATLENS,
    priority=5,
    permission=READ_PIPELINE_DATA,
    description="A raw log's progress through the pipeline stages.",
)
catalogue.declare(
    "new_alert",
    family=Family.INCIDENTS,
    priority=8,
    permission=RECEIVE_SECURITY,
    description="An alert was raised.",
)
catalogue.declare(
    "alert_updated",
    family=Family.INCIDENTS,
    priority=5,
    permission=RECEIVE_SECURITY,
    description="An alert changed (owner, status, incident).",
)
for name, priority in [("incident_created", 8), ("incident_updated", 5)]:
    catalogue.declare(
        name,
        family=Family.INCIDENTS,
        priority=priority,
        permission=RECEIVE_SECURITY,
        audience=Audience.LISTED,
        see_all_permission=VIEW_ALL_INCIDENTS,
        description="To the incident's owner, its watchers and users who may see all incidents.",
    )
catalogue.declare(
    "security_alert",
    family=Family.SECURITY,
    priority=10,
    permission=RECEIVE_SECURITY,
    description="An alert raised by detection (SecurityEvent, unified-ws.md).",
)
catalogue.declare(
    "threat_detected",
    family=Family.SECURITY,
    priority=9,
    permission=RECEIVE_SECURITY,
    description="A DNS query for a domain listed by an RPZ rule or threat feed.",
)
