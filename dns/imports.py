"""Importing a BIND zone file: into a new zone, or into an existing one. All or nothing.

Every record is checked with the same rules as one created over REST; any problem, with
its line number, stops the import before anything is written. Identical records are
kept once (BIND ignores duplicates too). The apex NS naming the SOA's primary name server
is not stored as a record: the zone's SOA fields produce it on export.
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from dns import announce, services, validation, zonefile
from dns.events import changes_between
from dns.models import Record, Zone


def _problems_of(exc):
    if hasattr(exc, "error_dict"):
        return [
            f"{field}: {message}" if field != "__all__" else message
            for field, messages in exc.message_dict.items()
            for message in messages
        ]
    return exc.messages


def plan_records(parsed, zone_name, *, default_ttl, primary_ns, existing=()):
    """The records a parsed file adds to `zone_name`, validated, as `Record` field dicts
    (with `line`). `existing` are the zone's records kept beside them. Raises
    `ZoneFileError` listing every problem with its line."""
    problems, planned = [], []
    record_sets = validation.RecordSets(zone_name, existing)
    seen = {
        validation.record_key(r["name"], r["record_type"], r["value"], zone_name) for r in existing
    }
    for parsed_record in parsed.records:
        line = parsed_record.line
        try:
            fields = zonefile.record_fields(parsed_record, zone_name)
            normalised = validation.validate_record(zone_name, **fields)
        except ValidationError as exc:
            problems.extend((line, message) for message in _problems_of(exc))
            continue
        if normalised["ttl"] == default_ttl:
            normalised["ttl"] = None  # inherits the zone's $TTL
        if (normalised["name"], normalised["record_type"]) == ("@", "NS") and (
            validation.absolute_name(normalised["value"], zone_name) == primary_ns
        ):
            continue
        key = validation.record_key(
            normalised["name"], normalised["record_type"], normalised["value"], zone_name
        )
        if key in seen:
            continue
        candidate = {**normalised, "id": f"line{line}"}
        try:
            record_sets.check(candidate)
        except ValidationError as exc:
            problems.extend((line, message) for message in _problems_of(exc))
            continue
        seen.add(key)
        record_sets.add(candidate)
        planned.append({**normalised, "line": line})
    if problems:
        raise zonefile.ZoneFileError(problems)
    return planned


def _zone_fields_from_soa(parsed, name, options):
    fields = {"name": name, "zone_type": Zone.ZoneType.MASTER}
    soa = parsed.soa
    if soa is not None:
        try:
            email = validation.rname_to_email(soa["rname"])
        except ValidationError as exc:
            raise zonefile.ZoneFileError([(soa["line"], exc.messages[0])]) from None
        fields.update(
            primary_ns=soa["mname"],
            email=email,
            refresh=soa["refresh"],
            retry=soa["retry"],
            expire=soa["expire"],
            minimum=soa["minimum"],
        )
    if parsed.default_ttl is not None:
        fields["default_ttl"] = parsed.default_ttl
    fields.update({key: value for key, value in options.items() if value is not None})
    if not fields.get("email"):
        raise ValidationError(
            {"zone_file": ["The file has no SOA record: give the admin e-mail as `email`."]}
        )
    return fields


def import_zone_file(
    actor, text, *, zone_id=None, name=None, replace=False, options=None, request=None
):
    """Import zone file `text`.

    New zone (`zone_id` None): its name is `name`, else the file's first `$ORIGIN`, else
    the SOA owner; its SOA fields come from the file (`options`, e.g. `email`,
    `description`, override them). Existing zone (`zone_id`): records are added beside
    the current ones, or replace them with `replace=True`; the SOA's timers are taken
    from the file when it has one. The serial never goes backward: it ends above both the
    zone's and the file's. Returns `(zone, summary)`.
    """
    options = dict(options or {})
    if zone_id is not None:
        return _import_into_existing(actor, zone_id, text, replace=replace, request=request)
    services.require_permission(actor, "dns.add_zone", "You may not create zones.")
    # Parsed and checked before the write transaction: on SQLite that one holds the
    # database's only write lock, so it should only write.
    parsed = zonefile.parse_zone_file(text, origin=name or None)
    zone_name = name or parsed.origin or (parsed.soa or {}).get("owner")
    if not zone_name:
        raise ValidationError({"name": ["Give the zone name: the file has no $ORIGIN or SOA."]})
    zone_name = validation.normalize_zone_name(zone_name)
    fields = _zone_fields_from_soa(parsed, zone_name, options)
    normalised = validation.validate_zone_fields(fields)
    planned = plan_records(
        parsed,
        zone_name,
        default_ttl=normalised.get("default_ttl", 3600),
        primary_ns=normalised.get("primary_ns") or f"ns1.{zone_name}",
    )
    soa_serial = (parsed.soa or {}).get("serial")
    serial = validation.next_serial(0, services.today())
    if soa_serial is not None and soa_serial >= serial:
        serial = validation.next_serial(soa_serial, services.today())
    with transaction.atomic():
        zone = services.create_zone(
            actor, {**fields, **normalised}, request=request, initial_serial=serial
        )
        summary = _write(actor, zone, planned)
        services.audit_import(zone, summary, actor=actor, request=request)
        return zone, summary


def _import_into_existing(actor, zone_id, text, *, replace, request):
    """Parse and check against the zone's records as read before the write transaction;
    inside it, check again only if the zone changed meanwhile (its serial rose)."""
    zone = services.zone_for_change(actor, zone_id)
    services.require_master(zone)
    parsed = zonefile.parse_zone_file(text, origin=zone.name)
    if parsed.soa is not None and parsed.soa["owner"] != zone.name:
        raise zonefile.ZoneFileError(
            [(parsed.soa["line"], f"the SOA is for {parsed.soa['owner']}, not {zone.name}")]
        )
    planned = _plan_into(zone, parsed, replace=replace)
    with transaction.atomic():
        locked = services.lock_zone(actor, zone_id)
        services.require_master(locked)
        if (locked.serial, locked.version) != (zone.serial, zone.version):
            planned = _plan_into(locked, parsed, replace=replace)
        return _import_into(actor, locked, parsed, planned, replace=replace, request=request)


def _zone_updates(zone, parsed):
    updates = {}
    if parsed.soa is not None:
        updates = {key: parsed.soa[key] for key in ("refresh", "retry", "expire", "minimum")}
        updates["primary_ns"] = parsed.soa["mname"]
        try:
            updates["email"] = validation.rname_to_email(parsed.soa["rname"])
        except ValidationError as exc:
            raise zonefile.ZoneFileError([(parsed.soa["line"], exc.messages[0])]) from None
    if parsed.default_ttl is not None:
        updates["default_ttl"] = parsed.default_ttl
    before = services.zone_values(zone)
    fields = validation.validate_zone_fields(
        {**{k: before[k] for k in Zone.EDITABLE_FIELDS}, **updates}
    )
    return updates, fields


def _plan_into(zone, parsed, *, replace):
    _updates, fields = _zone_updates(zone, parsed)
    existing = [] if replace else list(zone.records.values("id", "name", "record_type", "value"))
    return plan_records(
        parsed,
        zone.name,
        default_ttl=fields["default_ttl"],
        primary_ns=fields.get("primary_ns") or f"ns1.{zone.name}",
        existing=existing,
    )


def _import_into(actor, zone, parsed, planned, *, replace, request):
    before = services.zone_values(zone)
    old_count = zone.records.count()
    updates, fields = _zone_updates(zone, parsed)
    removed = 0
    if replace:
        with services.writing():
            removed, _ = Record.objects.filter(zone=zone).delete()
    for key in updates:
        setattr(zone, key, fields[key])
    summary = _write(actor, zone, planned)
    summary["removed"] = removed
    soa_serial = (parsed.soa or {}).get("serial")
    serial = validation.next_serial(zone.serial, services.today())
    if soa_serial is not None and soa_serial >= serial:
        serial = validation.next_serial(soa_serial, services.today())
    zone.serial = summary["serial"] = serial
    changes = changes_between(before, services.zone_values(zone))
    changes.append(
        {"field": "records_count", "old_value": old_count, "new_value": zone.records.count()}
    )
    zone.version += 1
    zone.updated_by = actor
    with services.writing():
        zone.save(
            update_fields=[c["field"] for c in changes if c["field"] != "records_count"]
            + ["version", "updated_by", "updated_at"]
        )
    announce.zone_changed(zone, "updated", changes, actor=actor, request=request)
    services.audit_import(zone, summary, actor=actor, request=request)
    return zone, summary


def _write(actor, zone, planned):
    records = [
        Record(
            zone=zone,
            created_by=actor,
            updated_by=actor,
            **{key: value for key, value in item.items() if key != "line"},
        )
        for item in planned
    ]
    with services.writing():
        Record.objects.bulk_create(records, batch_size=500)
    return {
        "zone_id": zone.pk,
        "zone": zone.name,
        "added": len(records),
        "removed": 0,
        "serial": zone.serial,
    }
