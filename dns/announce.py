"""The side effects of one DNS change: its audit row and its events.

Called by `dns.services`, the one write path (REST, the Django admin, commands, jobs;
`threatlens.writeguard` refuses the others), so every change audits and broadcasts the
same way. Events go out with `publish_on_commit`: nothing is sent for a transaction that
rolls back, and a transaction's events share one INSERT (the same object changed twice in
it is announced once, with its last state).
"""

from dns import bind, events
from dns.models import RpzRule, ZoneAccess
from realtime.publishing import Recipients, publish_on_commit
from threatlens.audit.services import record as audit

ZONE_ACTIONS = {"created": "create", "updated": "update", "deleted": "delete"}


def config_changed(object_type, action, actor, *, zone=None, bind_sync=True):
    """`config_change` for everyone with receive_system (what changed, never record data),
    and, with the BIND integration on, a BIND sync once the transaction commits."""
    # Many changes of one kind to one zone in a transaction: one config_change.
    publish_on_commit(
        "config_change",
        dict(events.config_change_data(object_type, action, actor, zone=zone)),
        merge_key=(action, zone.pk if zone is not None else None),
    )
    if bind_sync:
        where = f" in {zone.name}" if zone is not None else ""
        bind.request_sync(f"{action}{where}")


def zone_readers(zone_id):
    """Who may read the zone: the users and groups of its access rows. Admins (holders of
    `dns.view_all_zones`) receive zone events through the catalogue's see-all permission."""
    users, groups = set(), set()
    for user_id, group_id in ZoneAccess.objects.filter(zone_id=zone_id).values_list(
        "user_id", "group_id"
    ):
        if user_id:
            users.add(user_id)
        if group_id:
            groups.add(group_id)
    return Recipients(users=frozenset(users), groups=frozenset(groups))


def _with(recipients, extra_users):
    if not extra_users:
        return recipients
    return Recipients(users=recipients.users | frozenset(extra_users), groups=recipients.groups)


def _old_new(changes, action="updated"):
    """Audit `old`/`new` of a change list: no `old` for a creation, no `new` for a deletion."""
    old = {change["field"]: change["old_value"] for change in changes}
    new = {change["field"]: change["new_value"] for change in changes}
    return (
        None if action == "created" else old or None,
        None if action == "deleted" else new or None,
    )


def zone_changed(zone, action, changes, *, actor, request=None, recipients=None, extra_users=()):
    """Audit and announce a zone `created`/`updated`/`deleted`.

    `recipients` must be given for a deletion (read before the access rows went);
    `extra_users` adds users whose access rows are not committed yet (the creator).
    """
    old, new = _old_new(changes, action)
    audit(
        f"dns.zone.{ZONE_ACTIONS[action]}",
        actor=actor,
        target=zone,
        request=request,
        old=old,
        new=new,
        target_type="dns.zone",
        target_id=str(zone.pk),
        target_repr=zone.name,
    )
    readers = _with(recipients or zone_readers(zone.pk), extra_users)
    publish_on_commit(
        f"zone_{action}",
        dict(events.zone_event_data(zone, action, changes, actor)),
        recipients=readers,
        merge_key=zone.pk,
        merge=events.merge_changes,
    )
    config_changed("zone", f"zone_{action}", actor, zone=zone)


def record_changed(record, zone, action, changes, *, actor, request=None):
    """Audit and announce a record `created`/`updated`/`deleted` (`record.pk` still set)."""
    old, new = _old_new(changes, action)
    audit(
        f"dns.record.{ZONE_ACTIONS[action]}",
        actor=actor,
        request=request,
        old=old,
        new=new,
        details={"zone": zone.name, "zone_id": zone.pk},
        target_type="dns.record",
        target_id=str(record.pk),
        target_repr=f"{record.name} {record.record_type} ({zone.name})",
    )
    publish_on_commit(
        f"record_{action}",
        dict(events.record_event_data(record, zone, action, changes, actor)),
        recipients=zone_readers(zone.pk),
        merge_key=record.pk,
        merge=events.merge_changes,
    )
    config_changed("record", f"record_{action}", actor, zone=zone)


def rpz_rule_changed(rule, action, changes, *, actor, request=None):
    old, new = _old_new(changes, action)
    audit(
        f"dns.rpz.{ZONE_ACTIONS[action]}",
        actor=actor,
        request=request,
        old=old,
        new=new,
        target_type="dns.rpzrule",
        target_id=str(rule.pk),
        target_repr=f"{rule.domain} {rule.action}",
    )
    publish_on_commit("rpz_updated", events.rpz_rule_data(rule, action, changes, actor))
    config_changed("rpz", f"rpz_{action}", actor)


def rpz_rules_replaced(feed, *, added, removed, actor):
    """One `rpz_updated` for many rules changed together (a feed import or deletion)."""
    publish_on_commit(
        "rpz_updated",
        events.rpz_bulk_data(
            "feed_import" if added else "feed_removed",
            added=added,
            removed=removed,
            total=RpzRule.objects.filter(is_active=True).count(),
            feed=feed,
            actor=actor,
        ),
    )
    config_changed("rpz", "rpz_feed_update", actor)


def feed_changed(feed, action, changes, *, actor, request=None, added=0, removed=0):
    old, new = _old_new(changes, action)
    audit(
        f"dns.feed.{ZONE_ACTIONS.get(action, action)}",
        actor=actor,
        request=request,
        old=old,
        new=new,
        details={"added": added, "removed": removed} if (added or removed) else None,
        target_type="dns.threatfeed",
        target_id=str(feed.pk),
        target_repr=feed.name,
    )
    publish_on_commit(
        "threat_feed_updated",
        events.threat_feed_data(feed, action, actor, added=added, removed=removed, changes=changes),
    )


def feed_fetch_failed(feed, reason):
    """A download of the feed failed (its rules are unchanged): `threat_feed_updated`
    with action `fetch_failed`; the reason is the feed's `last_error`. No audit row: the
    system's own bookkeeping, not a change of the configuration."""
    publish_on_commit("threat_feed_updated", events.threat_feed_data(feed, "fetch_failed", None))


def forwarder_changed(forwarder, action, changes, *, actor, request=None):
    old, new = _old_new(changes, action)
    audit(
        f"dns.forwarder.{ZONE_ACTIONS[action]}",
        actor=actor,
        request=request,
        old=old,
        new=new,
        target_type="dns.forwarder",
        target_id=str(forwarder.pk),
        target_repr=str(forwarder),
    )
    config_changed("forwarder", f"forwarder_{action}", actor, bind_sync=False)


def access_changed(access, action, *, actor, request=None):
    audit(
        f"dns.access.{'grant' if action != 'deleted' else 'revoke'}",
        actor=actor,
        request=request,
        new={
            "user_id": access.user_id,
            "group_id": access.group_id,
            "can_change": access.can_change,
        }
        if action != "deleted"
        else None,
        old={
            "user_id": access.user_id,
            "group_id": access.group_id,
            "can_change": access.can_change,
        }
        if action == "deleted"
        else None,
        target_type="dns.zone",
        target_id=str(access.zone_id),
        target_repr=str(access)[:200],
    )
    # The grantee's open console adds (or drops) the zone live; nobody else hears of it.
    grantee = Recipients(
        users=frozenset({access.user_id} if access.user_id else ()),
        groups=frozenset({access.group_id} if access.group_id else ()),
    )
    publish_on_commit(
        "zone_access_changed",
        dict(
            events.zone_access_data(access, "revoked" if action == "deleted" else "granted", actor)
        ),
        recipients=grantee,
    )
