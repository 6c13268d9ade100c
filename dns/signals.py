"""Side effects of plain `save()`/`delete()` calls on DNS models (the Django admin, a shell).

Writes made by `dns.services` are marked `_dns_handled` and skipped here: the service has
already audited and announced them. For the other writes these receivers do what the
service would have done after the fact: raise the zone serial and the row's version,
write the audit row (actor: `_dns_actor`, set by the admin) and publish the same events.
Bulk paths (`bulk_create`, `queryset.update`) send no signals; they announce explicitly.
Connected in `DnsConfig.ready()`.
"""

from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save

from dns import announce, validation
from dns.events import changes_between
from dns.models import Forwarder, Record, RpzRule, ThreatFeed, Zone, ZoneAccess
from dns.services import handled, in_bulk_writes, record_values, today, zone_values


def _skip(instance):
    return getattr(instance, "_dns_handled", False) or in_bulk_writes()


def _actor(instance):
    return getattr(instance, "_dns_actor", None), getattr(instance, "_dns_request", None)


def _locked(queryset):
    # Lock when there is a transaction to hold the lock (the admin runs in one).
    if transaction.get_connection().in_atomic_block:
        return queryset.select_for_update()
    return queryset


def _from_cascade(origin, model):
    """True when a deletion started at a `model` instance or queryset (a cascade)."""
    if isinstance(origin, model):
        return True
    return getattr(origin, "model", None) is model


# --- Zones ----------------------------------------------------------------------------------


def zone_pre_save(sender, instance, **kwargs):
    if _skip(instance) or kwargs.get("raw"):
        return
    if instance.pk is None:
        instance._dns_before = None
        if not instance.serial:
            instance.serial = validation.next_serial(0, today())
        return
    instance._dns_before = (
        _locked(Zone.objects.filter(pk=instance.pk))
        .values(*Zone.EDITABLE_FIELDS, "serial", "version")
        .first()
    )


def zone_post_save(sender, instance, created, **kwargs):
    if _skip(instance) or kwargs.get("raw"):
        return
    actor, request = _actor(instance)
    before = getattr(instance, "_dns_before", None)
    if created or before is None:
        if actor is not None and actor.pk:
            access = ZoneAccess(zone=instance, user=actor, can_change=True, granted_by=actor)
            with handled(access):
                access.save()
        announce.zone_changed(
            instance,
            "created",
            changes_between(None, zone_values(instance)),
            actor=actor,
            request=request,
        )
        return
    old_version = before.pop("version")
    changes = changes_between(before, zone_values(instance))
    changes = [change for change in changes if change["field"] != "serial"]
    if not changes:
        return
    serial = validation.next_serial(max(before["serial"], instance.serial), today())
    Zone.objects.filter(pk=instance.pk).update(serial=serial, version=old_version + 1)
    changes.append({"field": "serial", "old_value": before["serial"], "new_value": serial})
    instance.serial, instance.version = serial, old_version + 1
    announce.zone_changed(instance, "updated", changes, actor=actor, request=request)


def zone_pre_delete(sender, instance, **kwargs):
    if _skip(instance):
        return
    instance._dns_readers = announce.zone_readers(instance.pk)
    instance._dns_before = zone_values(instance)


def zone_post_delete(sender, instance, **kwargs):
    if _skip(instance):
        return
    actor, request = _actor(instance)
    announce.zone_changed(
        instance,
        "deleted",
        changes_between(instance._dns_before, None),
        actor=actor,
        request=request,
        recipients=instance._dns_readers,
    )


# --- Records --------------------------------------------------------------------------------


def _bump_zone_serial(zone_id):
    zone = _locked(Zone.objects.filter(pk=zone_id)).first()
    if zone is None:
        return None
    serial = validation.next_serial(zone.serial, today())
    Zone.objects.filter(pk=zone_id).update(serial=serial)
    zone.serial = serial
    return zone


def record_pre_save(sender, instance, **kwargs):
    if _skip(instance) or kwargs.get("raw"):
        return
    instance._dns_before = None
    if instance.pk is not None:
        instance._dns_before = (
            Record.objects.filter(pk=instance.pk).values(*Record.EDITABLE_FIELDS, "version").first()
        )


def record_post_save(sender, instance, created, **kwargs):
    if _skip(instance) or kwargs.get("raw"):
        return
    actor, request = _actor(instance)
    before = getattr(instance, "_dns_before", None)
    if created or before is None:
        changes, action = changes_between(None, record_values(instance)), "created"
    else:
        old_version = before.pop("version")
        changes, action = changes_between(before, record_values(instance)), "updated"
        if not changes:
            return
        Record.objects.filter(pk=instance.pk).update(version=old_version + 1)
        instance.version = old_version + 1
    zone = _bump_zone_serial(instance.zone_id)
    announce.record_changed(instance, zone, action, changes, actor=actor, request=request)


def record_post_delete(sender, instance, origin=None, **kwargs):
    if _skip(instance) or _from_cascade(origin, Zone):
        return  # a zone's deletion announces itself, not each of its records
    actor, request = _actor(instance)
    zone = _bump_zone_serial(instance.zone_id)
    if zone is not None:
        announce.record_changed(
            instance,
            zone,
            "deleted",
            changes_between(record_values(instance), None),
            actor=actor,
            request=request,
        )


# --- Access, RPZ, feeds, forwarders ------------------------------------------------------------


def access_post_save(sender, instance, **kwargs):
    if _skip(instance) or kwargs.get("raw"):
        return
    actor, request = _actor(instance)
    announce.access_changed(instance, "updated", actor=actor, request=request)


def access_post_delete(sender, instance, origin=None, **kwargs):
    if _skip(instance) or _from_cascade(origin, Zone):
        return
    actor, request = _actor(instance)
    announce.access_changed(instance, "deleted", actor=actor, request=request)


def _values(instance):
    return {key: getattr(instance, key) for key in type(instance).EDITABLE_FIELDS}


def simple_pre_save(sender, instance, **kwargs):
    if _skip(instance) or kwargs.get("raw"):
        return
    instance._dns_before = None
    if instance.pk is not None:
        instance._dns_before = (
            sender.objects.filter(pk=instance.pk).values(*sender.EDITABLE_FIELDS).first()
        )


_ANNOUNCERS = {
    RpzRule: announce.rpz_rule_changed,
    ThreatFeed: announce.feed_changed,
    Forwarder: announce.forwarder_changed,
}


def simple_post_save(sender, instance, created, **kwargs):
    if _skip(instance) or kwargs.get("raw"):
        return
    actor, request = _actor(instance)
    before = getattr(instance, "_dns_before", None)
    action = "created" if created or before is None else "updated"
    changes = changes_between(before, _values(instance))
    if changes:
        _ANNOUNCERS[sender](instance, action, changes, actor=actor, request=request)


def simple_post_delete(sender, instance, origin=None, **kwargs):
    if _skip(instance) or (sender is RpzRule and _from_cascade(origin, ThreatFeed)):
        return
    actor, request = _actor(instance)
    _ANNOUNCERS[sender](
        instance,
        "deleted",
        changes_between(_values(instance), None),
        actor=actor,
        request=request,
    )


def connect():
    """Wire the receivers (from `DnsConfig.ready()`)."""
    uid = "dns.signals."
    pre_save.connect(zone_pre_save, sender=Zone, dispatch_uid=uid + "zone_pre_save")
    post_save.connect(zone_post_save, sender=Zone, dispatch_uid=uid + "zone_post_save")
    pre_delete.connect(zone_pre_delete, sender=Zone, dispatch_uid=uid + "zone_pre_delete")
    post_delete.connect(zone_post_delete, sender=Zone, dispatch_uid=uid + "zone_post_delete")
    pre_save.connect(record_pre_save, sender=Record, dispatch_uid=uid + "record_pre_save")
    post_save.connect(record_post_save, sender=Record, dispatch_uid=uid + "record_post_save")
    post_delete.connect(record_post_delete, sender=Record, dispatch_uid=uid + "record_post_delete")
    post_save.connect(access_post_save, sender=ZoneAccess, dispatch_uid=uid + "access_post_save")
    post_delete.connect(
        access_post_delete, sender=ZoneAccess, dispatch_uid=uid + "access_post_delete"
    )
    for model in _ANNOUNCERS:
        name = model._meta.model_name
        pre_save.connect(simple_pre_save, sender=model, dispatch_uid=f"{uid}{name}_pre_save")
        post_save.connect(simple_post_save, sender=model, dispatch_uid=f"{uid}{name}_post_save")
        post_delete.connect(
            simple_post_delete, sender=model, dispatch_uid=f"{uid}{name}_post_delete"
        )
