"""Writes of DNS management, one transaction each.

Every function checks the actor's permission (zones and records through
`for_user(actor, change=True)`), validates with `dns.validation`, writes, raises the
zone's serial under the zone row's lock, and has `dns.announce` write the audit row and
publish the events after commit. `actor=None` is the system itself (management commands,
monitors): trusted, no permission check.

Errors: `django.core.exceptions.ValidationError` (bad input, nothing changed),
`PermissionDenied`, `<Model>.DoesNotExist` (not there or not readable), `StaleVersion`.
"""

from datetime import UTC

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Subquery
from django.utils import timezone

from dns import announce, validation
from dns.events import changes_between
from dns.models import Forwarder, Record, RpzRule, ThreatFeed, Zone, ZoneAccess
from threatlens.audit.services import record as audit
from threatlens.writeguard import service_writes


class StaleVersion(Exception):
    """An update named the version it was read at, and the object has changed since.

    `current` is the object as it is now (the REST API answers 409 with it).
    """

    def __init__(self, current):
        self.current = current
        super().__init__(
            f"{current._meta.verbose_name} {current.pk} was changed by someone else: it is "
            f"at version {current.version} now. Reload it and apply your change again."
        )


def today():
    return timezone.now().astimezone(UTC).date()


def writing():
    """The block a service writes its rows in (see `threatlens.writeguard`): a plain
    `save()`/`delete()` of a DNS model outside it raises `DirectWrite`."""
    return service_writes()


def require_permission(actor, permission, message):
    if actor is not None and not actor.has_perm(permission):
        raise PermissionDenied(message)


def zone_values(zone):
    values = {key: getattr(zone, key) for key in Zone.EDITABLE_FIELDS}
    values["serial"] = zone.serial
    return values


def record_values(record):
    return {key: getattr(record, key) for key in Record.EDITABLE_FIELDS}


def lock_zone(actor, zone_id, *, writer_job_id=None):
    """The zone row, locked until the transaction ends, if `actor` may change it.

    Raises `Zone.DoesNotExist` when the actor cannot even read it (so its existence is
    not revealed), `PermissionDenied` when they may only read it, and `chunked.ZoneBusy`
    while a bulk job (other than `writer_job_id`) is writing its records.
    """
    zone = _zone_for_change(Zone.objects.select_for_update(), actor, zone_id)
    from dns import chunked  # chunked writes records through this module

    chunked.ensure_not_being_written(zone, writer_job_id=writer_job_id)
    return zone


def zone_for_change(actor, zone_id):
    """The zone, read without a lock, if `actor` may change it (raises as `lock_zone`):
    for work done before the write transaction, which then takes `lock_zone`."""
    return _zone_for_change(Zone.objects.all(), actor, zone_id)


def _zone_for_change(queryset, actor, zone_id):
    if actor is not None:
        queryset = queryset.for_user(actor, change=True)
    zone = queryset.filter(pk=zone_id).first()
    if zone is None:
        if actor is not None and Zone.objects.for_user(actor).filter(pk=zone_id).exists():
            raise PermissionDenied("You may read this zone but not change it.")
        raise Zone.DoesNotExist(f"No zone {zone_id}.")
    return zone


def bump_serial(zone):
    """Raise the serial of a zone locked by `lock_zone` (record changes)."""
    zone.serial = validation.next_serial(zone.serial, today())
    with writing():
        zone.save(update_fields=["serial", "updated_at"])


def _check_version(instance, version):
    # Compared under the row lock, so two editors holding the same version cannot both win.
    if version is not None and int(version) != instance.version:
        raise StaleVersion(instance)


def _editable(data, fields):
    return {key: value for key, value in data.items() if key in fields}


def _ensure_unique_zone_name(name, exclude_pk=None):
    clash = Zone.objects.filter(name=name)
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise ValidationError({"name": [f"A zone named {name} already exists."]})


# --- Zones --------------------------------------------------------------------------------


def create_zone(actor, data, *, request=None, initial_serial=None):
    """Create a zone; its creator gets read and change access. `initial_serial` (an
    import keeping its file's serial) must not be below today's first serial."""
    require_permission(actor, "dns.add_zone", "You may not create zones.")
    fields = {"zone_type": Zone.ZoneType.MASTER, **_editable(data, Zone.EDITABLE_FIELDS)}
    missing = {key: ["This field is required."] for key in ("name", "email") if not fields.get(key)}
    if missing:
        raise ValidationError(missing)
    fields.setdefault("masters", [])
    fields.setdefault("forwarders", [])
    normalised = {**fields, **validation.validate_zone_fields(fields)}
    with transaction.atomic():
        _ensure_unique_zone_name(normalised["name"])
        zone = Zone(
            **normalised,
            serial=max(initial_serial or 0, validation.next_serial(0, today())),
            created_by=actor,
            updated_by=actor,
        )
        try:
            with transaction.atomic(), writing():
                zone.save()
        except IntegrityError:
            raise ValidationError(
                {"name": [f"A zone named {normalised['name']} already exists."]}
            ) from None
        if actor is not None:
            access = ZoneAccess(zone=zone, user=actor, can_change=True, granted_by=actor)
            with writing():
                access.save()
        announce.zone_changed(
            zone,
            "created",
            changes_between(None, zone_values(zone)),
            actor=actor,
            request=request,
        )
    return zone


def update_zone(actor, zone_id, data, *, version, request=None):
    """Change a zone's fields. `version` is the one the client read (None: no check)."""
    with transaction.atomic():
        zone = lock_zone(actor, zone_id)
        _check_version(zone, version)
        before = zone_values(zone)
        fields = {
            **_editable(before, Zone.EDITABLE_FIELDS),
            **_editable(data, Zone.EDITABLE_FIELDS),
        }
        normalised = validation.validate_zone_fields(fields)
        after = {**before, **fields, **normalised}
        changes = changes_between(before, after)
        if not changes:
            return zone
        if after["name"] != before["name"]:
            _ensure_unique_zone_name(after["name"], exclude_pk=zone.pk)
        if after["zone_type"] != Zone.ZoneType.MASTER and zone.records.exists():
            raise ValidationError(
                {"zone_type": ["This zone has records; only a master zone holds records."]}
            )
        for change in changes:
            setattr(zone, change["field"], change["new_value"])
        zone.serial = validation.next_serial(zone.serial, today())
        changes.append({"field": "serial", "old_value": before["serial"], "new_value": zone.serial})
        zone.version += 1
        zone.updated_by = actor
        try:
            # A savepoint: a rename racing another zone's creation fails as bad input.
            with transaction.atomic(), writing():
                zone.save(
                    update_fields=[c["field"] for c in changes]
                    + ["version", "updated_by", "updated_at"]
                )
        except IntegrityError:
            raise ValidationError({"name": [f"A zone named {zone.name} already exists."]}) from None
        announce.zone_changed(zone, "updated", changes, actor=actor, request=request)
    return zone


def delete_zone(actor, zone_id, *, version=None, request=None):
    """Delete a zone with its records and access rows."""
    with transaction.atomic():
        zone = lock_zone(actor, zone_id)
        require_permission(actor, "dns.delete_zone", "You may not delete zones.")
        _check_version(zone, version)
        # Read before the access rows go with the zone.
        readers = announce.zone_readers(zone.pk)
        before = zone_values(zone)
        pk = zone.pk
        with writing():
            zone.delete()
        zone.pk = pk
        announce.zone_changed(
            zone,
            "deleted",
            changes_between(before, None),
            actor=actor,
            request=request,
            recipients=readers,
        )
    return zone


def audit_import(zone, summary, *, actor, request=None):
    """The audit row of a zone file import (the records themselves are in the file)."""
    audit(
        "dns.zone.import",
        actor=actor,
        target=zone,
        request=request,
        details=summary,
        target_type="dns.zone",
        target_id=str(zone.pk),
        target_repr=zone.name,
    )


# --- Records ------------------------------------------------------------------------------


def require_master(zone):
    if zone.zone_type != Zone.ZoneType.MASTER:
        raise ValidationError(
            {"zone": [f"{zone.name} is a {zone.zone_type} zone; only master zones hold records."]}
        )


def check_against_zone(zone, candidate):
    """The rules between `candidate` (normalised fields, `id` when it exists) and the
    zone's other records of the same name: CNAME exclusivity and duplicates."""
    others = zone.records.filter(name=candidate["name"]).values(
        "id", "name", "record_type", "value"
    )
    validation.check_record_set(candidate, others, zone.name)


def create_record(actor, zone_id, data, *, request=None):
    with transaction.atomic():
        zone = lock_zone(actor, zone_id)
        require_master(zone)
        fields = {key: data.get(key) for key in Record.EDITABLE_FIELDS}
        normalised = validation.validate_record(zone.name, **fields)
        check_against_zone(zone, normalised)
        record = Record(zone=zone, **normalised, created_by=actor, updated_by=actor)
        with writing():
            record.save()
        bump_serial(zone)
        announce.record_changed(
            record,
            zone,
            "created",
            changes_between(None, record_values(record)),
            actor=actor,
            request=request,
        )
    return record


def _lock_zone_of_record(actor, record_id):
    """`lock_zone` for the zone holding `record_id`, found by the locking query itself (one
    read, not two). The lock order stays zone, then record."""
    zone_id = Subquery(Record.objects.filter(pk=record_id).values("zone_id")[:1])
    try:
        return lock_zone(actor, zone_id)
    except Zone.DoesNotExist:
        _record_zone_id(actor, record_id)  # a record the actor may not read: "No record"
        raise


def _record_zone_id(actor, record_id):
    queryset = Record.objects.all() if actor is None else Record.objects.for_user(actor)
    zone_id = queryset.filter(pk=record_id).values_list("zone_id", flat=True).first()
    if zone_id is None:
        raise Record.DoesNotExist(f"No record {record_id}.")
    return zone_id


def update_record(actor, record_id, data, *, version, request=None):
    """Change a record. `version` is the one the client read (None: no check)."""
    with transaction.atomic():
        # Zone first, then record: every writer takes the locks in this order.
        zone = _lock_zone_of_record(actor, record_id)
        record = Record.objects.select_for_update().get(pk=record_id, zone=zone)
        _check_version(record, version)
        before = record_values(record)
        fields = {**before, **_editable(data, Record.EDITABLE_FIELDS)}
        normalised = validation.validate_record(zone.name, **fields)
        changes = changes_between(before, normalised)
        if not changes:
            return record
        check_against_zone(zone, {**normalised, "id": record.pk})
        for change in changes:
            setattr(record, change["field"], change["new_value"])
        record.version += 1
        record.updated_by = actor
        with writing():
            record.save(
                update_fields=[c["field"] for c in changes]
                + ["version", "updated_by", "updated_at"]
            )
        bump_serial(zone)
        announce.record_changed(record, zone, "updated", changes, actor=actor, request=request)
    return record


def delete_record(actor, record_id, *, version=None, request=None):
    with transaction.atomic():
        zone = _lock_zone_of_record(actor, record_id)
        record = Record.objects.select_for_update().get(pk=record_id, zone=zone)
        _check_version(record, version)
        before = record_values(record)
        pk = record.pk
        with writing():
            record.delete()
        record.pk = pk
        bump_serial(zone)
        announce.record_changed(
            record, zone, "deleted", changes_between(before, None), actor=actor, request=request
        )
    return record


# --- Access -------------------------------------------------------------------------------


def grant_access(actor, zone_id, *, user=None, group=None, can_change=False, request=None):
    """Give a user or a group read (and with `can_change`, change) access to a zone;
    granting again updates `can_change`."""
    require_permission(actor, "dns.add_zoneaccess", "Only administrators grant zone access.")
    if bool(user) == bool(group):
        raise ValidationError("Name either a user or a group.")
    with transaction.atomic():
        zone = Zone.objects.select_for_update().get(pk=zone_id)
        lookup = {"user": user} if user else {"group": group}
        access = ZoneAccess.objects.filter(zone=zone, **lookup).first()
        if access is not None and access.can_change == bool(can_change):
            return access
        if access is None:
            access = ZoneAccess(zone=zone, **lookup)
        access.can_change = bool(can_change)
        access.granted_by = actor
        with writing():
            access.save()
        announce.access_changed(access, "updated", actor=actor, request=request)
    return access


def revoke_access(actor, access_id, *, zone_id=None, request=None):
    require_permission(actor, "dns.delete_zoneaccess", "Only administrators revoke zone access.")
    with transaction.atomic():
        queryset = ZoneAccess.objects.select_for_update()
        if zone_id is not None:
            queryset = queryset.filter(zone_id=zone_id)
        access = queryset.get(pk=access_id)
        pk = access.pk
        with writing():
            access.delete()
        access.pk = pk
        announce.access_changed(access, "deleted", actor=actor, request=request)


# --- RPZ rules, threat feeds, forwarders ---------------------------------------------------


def _create_simple(model, actor, data, *, permission, changed, extra=None, request=None):
    require_permission(actor, permission, f"You may not create {model._meta.verbose_name_plural}.")
    instance = model(**_editable(data, model.EDITABLE_FIELDS), **(extra or {}))
    with transaction.atomic():
        instance.full_clean()
        with writing():
            instance.save()
        values = {key: getattr(instance, key) for key in model.EDITABLE_FIELDS}
        changed(instance, "created", changes_between(None, values), actor=actor, request=request)
    return instance


def _update_simple(model, actor, pk, data, *, permission, changed, request=None):
    require_permission(actor, permission, f"You may not change {model._meta.verbose_name_plural}.")
    with transaction.atomic():
        instance = model.objects.select_for_update().get(pk=pk)
        before = {key: getattr(instance, key) for key in model.EDITABLE_FIELDS}
        for key, value in _editable(data, model.EDITABLE_FIELDS).items():
            setattr(instance, key, value)
        instance.full_clean()
        after = {key: getattr(instance, key) for key in model.EDITABLE_FIELDS}
        changes = changes_between(before, after)
        if changes:
            with writing():
                instance.save(update_fields=[c["field"] for c in changes] + ["updated_at"])
            changed(instance, "updated", changes, actor=actor, request=request)
    return instance


def _delete_simple(model, actor, pk, *, permission, changed, request=None):
    require_permission(actor, permission, f"You may not delete {model._meta.verbose_name_plural}.")
    with transaction.atomic():
        instance = model.objects.select_for_update().get(pk=pk)
        before = {key: getattr(instance, key) for key in model.EDITABLE_FIELDS}
        with writing():
            instance.delete()
        instance.pk = pk
        changed(instance, "deleted", changes_between(before, None), actor=actor, request=request)
    return instance


# Sources only the code may give a rule: `incident:<reference>` names the incident whose
# block made it (incidents.response), and DNS queries that hit it land on that incident.
RESERVED_SOURCE_PREFIXES = ("incident:",)


def _check_source(data):
    source = data.get("source")
    if isinstance(source, str) and source.strip().lower().startswith(RESERVED_SOURCE_PREFIXES):
        raise ValidationError(
            {"source": ["Sources starting with 'incident:' are set by an incident's block."]}
        )


def create_rpz_rule(actor, data, *, request=None, source=None):
    """A manual RPZ rule (feed rules come from `dns.feeds`). `source` is for callers in
    code (an incident's block); a `source` in `data` may not use a reserved prefix."""
    _check_source(data)
    extra = {"created_by": actor, "source": source or data.get("source") or "manual"}
    data = {key: value for key, value in data.items() if key != "source"}
    return _create_simple(
        RpzRule,
        actor,
        data,
        permission="dns.add_rpzrule",
        changed=announce.rpz_rule_changed,
        extra=extra,
        request=request,
    )


def update_rpz_rule(actor, rule_id, data, *, request=None):
    _check_source(data)
    return _update_simple(
        RpzRule,
        actor,
        rule_id,
        data,
        permission="dns.change_rpzrule",
        changed=announce.rpz_rule_changed,
        request=request,
    )


def delete_rpz_rule(actor, rule_id, *, request=None):
    return _delete_simple(
        RpzRule,
        actor,
        rule_id,
        permission="dns.delete_rpzrule",
        changed=announce.rpz_rule_changed,
        request=request,
    )


def create_feed(actor, data, *, request=None):
    return _create_simple(
        ThreatFeed,
        actor,
        data,
        permission="dns.add_threatfeed",
        changed=announce.feed_changed,
        request=request,
    )


def update_feed(actor, feed_id, data, *, request=None):
    return _update_simple(
        ThreatFeed,
        actor,
        feed_id,
        data,
        permission="dns.change_threatfeed",
        changed=announce.feed_changed,
        request=request,
    )


def delete_feed(actor, feed_id, *, request=None):
    """Delete a feed and the RPZ rules it filled (one `rpz_updated` for all of them)."""
    with transaction.atomic():
        removed = RpzRule.objects.filter(feed_id=feed_id).count()
        feed = _delete_simple(
            ThreatFeed,
            actor,
            feed_id,
            permission="dns.delete_threatfeed",
            changed=announce.feed_changed,
            request=request,
        )
        if removed:
            announce.rpz_rules_replaced(feed, added=0, removed=removed, actor=actor)
    return feed


def create_forwarder(actor, data, *, request=None):
    return _create_simple(
        Forwarder,
        actor,
        data,
        permission="dns.add_forwarder",
        changed=announce.forwarder_changed,
        request=request,
    )


def update_forwarder(actor, forwarder_id, data, *, request=None):
    return _update_simple(
        Forwarder,
        actor,
        forwarder_id,
        data,
        permission="dns.change_forwarder",
        changed=announce.forwarder_changed,
        request=request,
    )


def delete_forwarder(actor, forwarder_id, *, request=None):
    return _delete_simple(
        Forwarder,
        actor,
        forwarder_id,
        permission="dns.delete_forwarder",
        changed=announce.forwarder_changed,
        request=request,
    )
