"""Event types of the audit log."""

from realtime import catalogue
from realtime.catalogue import PRIORITY_LOW, RECEIVE_AUDIT, Family

catalogue.declare(
    "user_action",
    family=Family.THREATLENS,
    priority=PRIORITY_LOW,
    permission=RECEIVE_AUDIT,
    description="An audited action: who did what to which object.",
)
