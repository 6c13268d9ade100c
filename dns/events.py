"""Event types of DNS management: zone and record events reach only the zone's readers."""

from realtime import catalogue
from realtime.catalogue import RECEIVE_DNS, RECEIVE_SECURITY, RECEIVE_SYSTEM, Audience, Family

VIEW_ALL_ZONES = "dns.view_all_zones"

for name, priority in [
    ("zone_created", 7),
    ("zone_updated", 7),
    ("zone_deleted", 7),
    ("record_created", 7),
    ("record_updated", 7),
    ("record_deleted", 7),
    ("bulk_operation_progress", 5),
    ("bulk_operation_complete", 7),
]:
    catalogue.declare(
        name,
        family=Family.DNS,
        priority=priority,
        permission=RECEIVE_DNS,
        audience=Audience.LISTED,
        see_all_permission=VIEW_ALL_ZONES,
        description="To users who may read the zone.",
    )
catalogue.declare(
    "zone_access_changed",
    family=Family.DNS,
    priority=7,
    permission=RECEIVE_DNS,
    audience=Audience.LISTED,
    see_all_permission=VIEW_ALL_ZONES,
    description="To the user or group granted (or revoked) access to a zone.",
)
for name, priority in [("rpz_updated", 7), ("threat_feed_updated", 5)]:
    catalogue.declare(name, family=Family.SECURITY, priority=priority, permission=RECEIVE_SECURITY)
for name, priority in [("forwarder_status_change", 8), ("bind_reload", 7)]:
    catalogue.declare(name, family=Family.SYSTEM, priority=priority, permission=RECEIVE_SYSTEM)
# Everyone with receive_system learns that the configuration changed; which zone, only
# those who may read every zone (a zone's readers get its own zone_*/record_* events).
# Otherwise a viewer learns names and ids of zones REST answers 404 for.
catalogue.declare(
    "config_change",
    family=Family.SYSTEM,
    priority=5,
    permission=RECEIVE_SYSTEM,
    sensitive_fields=("zone_name", "zone_id"),
    sensitive_permission=VIEW_ALL_ZONES,
    description="What kind of DNS configuration changed; the zone only to admins.",
)
