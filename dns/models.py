"""DNS management: zones, records, per-zone access, RPZ rules, threat feeds, forwarders.

Zones and records are only ever queried for a user through `for_user(user)`
(`Zone.objects.for_user(user)`, `Record.objects.for_user(user, change=True)`), which is
where per-zone access is decided. Writes go through `dns.services`.
"""

import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from dns import validation
from dns.events import VIEW_ALL_ZONES
from threatlens.fields import user_reference

CHANGE_ALL_ZONES = "dns.change_all_zones"


def can_see_all_zones(user, *, change=False):
    """Admins: superusers and holders of `dns.view_all_zones` (`dns.change_all_zones` to
    change every zone)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or user.has_perm(CHANGE_ALL_ZONES if change else VIEW_ALL_ZONES)


class ZoneQuerySet(models.QuerySet):
    def for_user(self, user, *, change=False):
        """The zones `user` may read (or change, with `change=True`).

        Admins see every zone; other users see the zones where they, or one of their
        groups, have a `ZoneAccess` row (with `can_change` for `change=True`).
        """
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        if can_see_all_zones(user, change=change):
            return self
        return self.filter(
            pk__in=ZoneAccess.objects.granting(user, change=change).values("zone_id")
        )


class Zone(models.Model):
    """A DNS zone with its SOA fields.

    `name` is a validated domain name stored lower-case without the final dot. Master
    zones hold records; slave zones name their `masters`, forward zones their
    `forwarders`. `serial` rises on every change of the zone or its records (see
    `validation.next_serial`), under a row lock. `version` counts edits of the zone row
    itself and guards against lost updates: an update names the version it was read at.
    """

    class ZoneType(models.TextChoices):
        MASTER = "master", "Master"
        SLAVE = "slave", "Slave"
        FORWARD = "forward", "Forward"

    name = models.CharField(max_length=253, unique=True)
    zone_type = models.CharField(max_length=10, choices=ZoneType.choices, default=ZoneType.MASTER)
    primary_ns = models.CharField(
        "primary name server",
        max_length=253,
        blank=True,
        help_text="SOA MNAME, an absolute host name; empty means ns1.<zone>.",
    )
    email = models.CharField(
        "admin e-mail", max_length=254, help_text="SOA RNAME, written as an e-mail address."
    )
    refresh = models.PositiveIntegerField(default=3600)
    retry = models.PositiveIntegerField(default=900)
    expire = models.PositiveIntegerField(default=1209600)
    minimum = models.PositiveIntegerField(
        default=3600, help_text="Negative caching TTL (SOA minimum, RFC 2308)."
    )
    default_ttl = models.PositiveIntegerField(default=3600, help_text="$TTL of the zone file.")
    serial = models.PositiveBigIntegerField(default=0)
    masters = models.JSONField(default=list, blank=True, help_text="Slave zones: master IPs.")
    forwarders = models.JSONField(
        default=list, blank=True, help_text="Forward zones: forwarder IPs."
    )
    is_active = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    created_by = user_reference()
    updated_by = user_reference()
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ZoneQuerySet.as_manager()

    # Fields a client may write; the rest are kept by the server.
    EDITABLE_FIELDS = (
        "name",
        "zone_type",
        "primary_ns",
        "email",
        "refresh",
        "retry",
        "expire",
        "minimum",
        "default_ttl",
        "masters",
        "forwarders",
        "is_active",
        "description",
    )

    class Meta:
        ordering = ["name"]
        permissions = [
            ("view_all_zones", "Can read every zone and receive its events"),
            ("change_all_zones", "Can change every zone and its records"),
        ]

    def __str__(self):
        return self.name

    @property
    def mname(self):
        """The SOA MNAME, absolute with the final dot."""
        return f"{self.primary_ns or 'ns1.' + self.name}."

    @property
    def rname(self):
        return validation.email_to_rname(self.email)

    def clean(self):
        fields = {key: getattr(self, key) for key in self.EDITABLE_FIELDS}
        normalised = validation.validate_zone_fields(fields)
        for key, value in normalised.items():
            setattr(self, key, value)


class RecordQuerySet(models.QuerySet):
    def for_user(self, user, *, change=False):
        """The records of the zones `user` may read (or change)."""
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        if can_see_all_zones(user, change=change):
            return self
        return self.filter(
            zone_id__in=ZoneAccess.objects.granting(user, change=change).values("zone_id")
        )


class Record(models.Model):
    """One resource record of a zone.

    `name` is relative to the zone (`@` for the apex). `value` is the record data: an
    address (A, AAAA), a target name relative to the zone or absolute with the final dot
    (CNAME, NS, PTR, MX, SRV), or text (TXT: see `validation.parse_txt`). MX uses
    `priority`, SRV `priority`, `weight` and `port`. An empty `ttl` inherits the zone's.
    """

    class RecordType(models.TextChoices):
        A = "A"
        AAAA = "AAAA"
        CNAME = "CNAME"
        MX = "MX"
        TXT = "TXT"
        SRV = "SRV"
        PTR = "PTR"
        NS = "NS"

    zone = models.ForeignKey(Zone, on_delete=models.CASCADE, related_name="records")
    name = models.CharField(max_length=253, default="@")
    record_type = models.CharField(max_length=8, choices=RecordType.choices)
    value = models.TextField()
    ttl = models.PositiveIntegerField(null=True, blank=True)
    priority = models.PositiveIntegerField(null=True, blank=True)
    weight = models.PositiveIntegerField(null=True, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_by = user_reference()
    updated_by = user_reference()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RecordQuerySet.as_manager()

    EDITABLE_FIELDS = ("name", "record_type", "value", "ttl", "priority", "weight", "port")

    class Meta:
        ordering = ["zone_id", "name", "record_type", "id"]
        indexes = [models.Index(fields=["zone", "name"]), models.Index(fields=["record_type"])]

    def __str__(self):
        return f"{self.fqdn} {self.record_type} {self.value[:60]}"

    @property
    def fqdn(self):
        return validation.absolute_name(self.name, self.zone.name)

    def field_values(self):
        return {key: getattr(self, key) for key in self.EDITABLE_FIELDS}

    def clean(self):
        """Field rules, then the rules between this record and the zone's others."""
        if self.zone_id is None:
            raise ValidationError({"zone": "A record belongs to a zone."})
        normalised = validation.validate_record(self.zone.name, **self.field_values())
        for key, value in normalised.items():
            setattr(self, key, value)
        others = self.zone.records.filter(name=self.name).exclude(pk=self.pk)
        validation.check_record_set(
            {
                "id": self.pk,
                "name": self.name,
                "record_type": self.record_type,
                "value": self.value,
            },
            others.values("id", "name", "record_type", "value"),
            self.zone.name,
        )


class ZoneAccessQuerySet(models.QuerySet):
    def granting(self, user, *, change=False):
        """Access rows that give `user` read (or change) access, directly or by group."""
        rows = self.filter(Q(user=user) | Q(group__in=user.groups.all()))
        return rows.filter(can_change=True) if change else rows


class ZoneAccess(models.Model):
    """Read access to one zone for a user or a group; `can_change` adds write access.

    The zone's creator gets a row with `can_change` when the zone is created. Admins
    (see `can_see_all_zones`) need no rows.
    """

    zone = models.ForeignKey(Zone, on_delete=models.CASCADE, related_name="access")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="dns_zone_access",
    )
    group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="dns_zone_access"
    )
    can_change = models.BooleanField(default=False)
    granted_by = user_reference()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ZoneAccessQuerySet.as_manager()

    class Meta:
        verbose_name = "zone access"
        verbose_name_plural = "zone access"
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(user__isnull=False, group__isnull=True)
                    | Q(user__isnull=True, group__isnull=False)
                ),
                name="dns_zoneaccess_user_xor_group",
            ),
            models.UniqueConstraint(
                fields=["zone", "user"],
                condition=Q(user__isnull=False),
                name="dns_zoneaccess_unique_user",
                violation_error_message="This user already has access to the zone.",
            ),
            models.UniqueConstraint(
                fields=["zone", "group"],
                condition=Q(group__isnull=False),
                name="dns_zoneaccess_unique_group",
                violation_error_message="This group already has access to the zone.",
            ),
        ]

    def __str__(self):
        who = f"user {self.user}" if self.user_id else f"group {self.group}"
        return f"{self.zone}: {who} ({'change' if self.can_change else 'read'})"

    def clean(self):
        if bool(self.user_id) == bool(self.group_id):
            raise ValidationError("Name either a user or a group.")


class ThreatFeed(models.Model):
    """A list of bad domains (URL or local file) that fills RPZ rules.

    `format` says how the list is written: `domains` (one per line) or `hosts`
    (`0.0.0.0 bad.example`). Rules created from the feed use its `action` and `category`.
    """

    class Format(models.TextChoices):
        DOMAINS = "domains", "Domain list"
        HOSTS = "hosts", "Hosts file"

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=500, blank=True)
    file_path = models.CharField(max_length=500, blank=True)
    format = models.CharField(max_length=10, choices=Format.choices, default=Format.DOMAINS)
    action = models.CharField(max_length=10, default="nxdomain")
    category = models.CharField(max_length=32, default="malware")
    is_active = models.BooleanField(default=True)
    last_update = models.DateTimeField(null=True, blank=True)
    entries_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    EDITABLE_FIELDS = (
        "name",
        "url",
        "file_path",
        "format",
        "action",
        "category",
        "is_active",
        "description",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        if not self.url and not self.file_path:
            raise ValidationError("A threat feed needs a URL or a file path.")
        if self.action not in RpzRule.Action.values or self.action == RpzRule.Action.REDIRECT:
            raise ValidationError(
                {"action": "A feed's action is nxdomain, nodata, passthru or drop."}
            )
        if self.category not in RpzRule.Category.values:
            raise ValidationError({"category": f"Not a category: {self.category!r}."})


class RpzRule(models.Model):
    """A response policy rule: what the resolver answers for `domain` (and, with
    `include_subdomains`, every name below it).

    Written to the RPZ zone as `CNAME .` (nxdomain), `CNAME *.` (nodata),
    `CNAME rpz-passthru.`, `CNAME rpz-drop.`, or `CNAME <redirect_target>.`.
    """

    class Action(models.TextChoices):
        NXDOMAIN = "nxdomain", "NXDOMAIN"
        NODATA = "nodata", "NODATA"
        PASSTHRU = "passthru", "Pass through"
        DROP = "drop", "Drop"
        REDIRECT = "redirect", "Redirect"

    class Category(models.TextChoices):
        MALWARE = "malware"
        PHISHING = "phishing"
        BOTNET = "botnet"
        SUSPICIOUS = "suspicious"
        POLICY_VIOLATION = "policy_violation"
        ADULT = "adult"
        GAMBLING = "gambling"
        SOCIAL_MEDIA = "social_media"
        CUSTOM = "custom"

    domain = models.CharField(max_length=253)
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.NXDOMAIN)
    redirect_target = models.CharField(max_length=253, blank=True)
    include_subdomains = models.BooleanField(default=True)
    category = models.CharField(max_length=32, choices=Category.choices, default=Category.CUSTOM)
    source = models.CharField(max_length=100, default="manual", help_text="Who listed it.")
    feed = models.ForeignKey(
        ThreatFeed, null=True, blank=True, on_delete=models.CASCADE, related_name="rules"
    )
    is_active = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    created_by = user_reference()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    EDITABLE_FIELDS = (
        "domain",
        "action",
        "redirect_target",
        "include_subdomains",
        "category",
        "source",
        "is_active",
        "description",
    )

    class Meta:
        verbose_name = "RPZ rule"
        ordering = ["domain", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["domain"],
                condition=Q(feed__isnull=True),
                name="dns_rpz_unique_manual",
                violation_error_message="There is already a rule for this domain.",
            ),
            models.UniqueConstraint(
                fields=["domain", "feed"],
                name="dns_rpz_unique_per_feed",
                violation_error_message="This feed already lists this domain.",
            ),
        ]

    def __str__(self):
        return f"{self.domain} -> {self.action}"

    def clean(self):
        errors = {}
        try:
            self.domain = validation.normalize_zone_name(self.domain, field="domain")
        except ValidationError as exc:
            errors.update(exc.message_dict)
        if self.action == self.Action.REDIRECT:
            try:
                self.redirect_target = validation.normalize_hostname(
                    self.redirect_target, field="redirect_target"
                )
            except ValidationError as exc:
                errors.update(exc.message_dict)
        elif self.redirect_target:
            errors["redirect_target"] = ["Only a redirect rule has a redirect target."]
        if errors:
            raise ValidationError(errors)


class Forwarder(models.Model):
    """An upstream resolver; `domains` limits it to some domains (empty: all queries).

    `health_status` is kept by the forwarder health monitor.
    """

    class Health(models.TextChoices):
        UNKNOWN = "unknown"
        HEALTHY = "healthy"
        WARNING = "warning"
        CRITICAL = "critical"

    name = models.CharField(max_length=100, blank=True)
    address = models.GenericIPAddressField()
    port = models.PositiveIntegerField(default=53)
    domains = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    health_status = models.CharField(max_length=10, choices=Health.choices, default=Health.UNKNOWN)
    last_check = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    response_time_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    EDITABLE_FIELDS = ("name", "address", "port", "domains", "is_active")

    class Meta:
        ordering = ["address", "port"]
        constraints = [
            models.UniqueConstraint(
                fields=["address", "port"],
                name="dns_forwarder_unique",
                violation_error_message="There is already a forwarder at this address and port.",
            )
        ]

    def __str__(self):
        return self.name or f"{self.address}:{self.port}"

    def clean(self):
        errors = {}
        try:
            validation.validate_u16(self.port, field="port")
        except ValidationError as exc:
            errors.update(exc.message_dict)
        if not isinstance(self.domains, list):
            errors["domains"] = ["A list of domain names."]
        else:
            try:
                self.domains = [
                    validation.normalize_zone_name(domain, field="domains")
                    for domain in self.domains
                ]
            except ValidationError as exc:
                errors.update(exc.message_dict)
        if errors:
            raise ValidationError(errors)


class BulkOperation(models.Model):
    """A bulk create, update or delete of a zone's records, run as a job.

    `items` holds the request; the job validates every item, then applies them all or
    nothing, in short transactions (`dns.chunked`). `processed`/`total`/`progress` are written as it
    runs; `result` holds the affected record ids, `errors` the item errors that stopped it.
    """

    class Operation(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"
        DELETE = "delete"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    zone = models.ForeignKey(Zone, on_delete=models.CASCADE, related_name="bulk_operations")
    operation = models.CharField(max_length=10, choices=Operation.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    items = models.JSONField(default=list)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    progress = models.FloatField(default=0.0)
    result = models.JSONField(null=True, blank=True)
    errors = models.JSONField(null=True, blank=True)
    created_by = user_reference()
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # While the job writes its records in chunks (`dns.chunked`): renewed by every chunk,
    # and other writers of the zone wait. `undo` holds the rows as they were before.
    writing_heartbeat_at = models.DateTimeField(null=True, blank=True, db_index=True)
    undo = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"bulk {self.operation} of {self.total} records in {self.zone_id} ({self.status})"
