"""The response policy zone built from the active RPZ rules."""

import time

from django.db.models import F, Q
from django.utils import timezone

from dns import zonefile
from dns.conf import dns_setting
from dns.models import RpzRule


def active_rules():
    """Rules in force: active, from no feed or an active feed; manual rules first, so
    they win over a feed listing the same domain."""
    return (
        RpzRule.objects.filter(is_active=True)
        .filter(Q(feed__isnull=True) | Q(feed__is_active=True))
        .order_by(F("feed_id").asc(nulls_first=True), "domain", "id")
    )


def rpz_serial():
    # Seconds since the epoch: rises with every export a second or more apart, fits the
    # 32-bit serial until 2106, and needs no stored state.
    return int(time.time())


def render_active_rpz():
    return zonefile.render_rpz(
        active_rules().iterator(chunk_size=2000),
        origin=dns_setting("RPZ_ZONE"),
        serial=rpz_serial(),
        generated_at=timezone.now(),
    )
