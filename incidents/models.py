"""Incident response: alerts, incidents, their timeline, comments and watchers.

The rules that decide what may change (status transitions, who may take an alert) live in
`incidents/services.py`; this module holds the data and the transition tables the services
and the admin read. Only the services write these rows, and announce what they write
(`incidents/writes.py`): a plain `save()` or `delete()` elsewhere raises `DirectWrite`.
"""

import uuid
from datetime import UTC

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import IntegrityError, models, transaction
from django.db.models import Case, Exists, IntegerField, OuterRef, Q, Value, When
from django.utils import timezone

from threatlens.fields import user_reference


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


# Severity as a number, for ordering and for "raise the incident to its worst alert".
SEVERITY_RANK = {Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3, Severity.CRITICAL: 4}


def severity_rank_expression(field="severity"):
    """An ORM expression ranking a severity column low=1 .. critical=4 (for ORDER BY)."""
    return Case(
        *(When(**{field: name}, then=Value(rank)) for name, rank in SEVERITY_RANK.items()),
        default=Value(0),
        output_field=IntegerField(),
    )


class AlertStatus(models.TextChoices):
    NEW = "new", "New"
    IN_PROGRESS = "in_progress", "In progress"
    RESOLVED = "resolved", "Resolved"
    FALSE_POSITIVE = "false_positive", "False positive"
    ESCALATED = "escalated", "Escalated"


# The one place that says which alert status may follow which. Setting the status an alert
# already has is not a transition (the services treat it as a no-op).
ALERT_TRANSITIONS = {
    AlertStatus.NEW: {
        AlertStatus.IN_PROGRESS,
        AlertStatus.RESOLVED,
        AlertStatus.FALSE_POSITIVE,
        AlertStatus.ESCALATED,
    },
    AlertStatus.IN_PROGRESS: {
        AlertStatus.RESOLVED,
        AlertStatus.FALSE_POSITIVE,
        AlertStatus.ESCALATED,
    },
    AlertStatus.ESCALATED: {
        AlertStatus.IN_PROGRESS,
        AlertStatus.RESOLVED,
        AlertStatus.FALSE_POSITIVE,
    },
    # Closed alerts can only be reopened.
    AlertStatus.RESOLVED: {AlertStatus.IN_PROGRESS},
    AlertStatus.FALSE_POSITIVE: {AlertStatus.IN_PROGRESS},
}
CLOSED_ALERT_STATUSES = frozenset({AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE})


class IncidentStatus(models.TextChoices):
    NEW = "new", "New"
    INVESTIGATING = "investigating", "Investigating"
    CONTAINED = "contained", "Contained"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


# Older names of incident statuses, accepted on input: `open` was the first status before it
# took the name the incident frontends and TheHive use (docs/migrating.md).
INCIDENT_STATUS_ALIASES = {"open": IncidentStatus.NEW}

# The one place that says which incident status may follow which.
INCIDENT_TRANSITIONS = {
    IncidentStatus.NEW: {
        IncidentStatus.INVESTIGATING,
        IncidentStatus.CONTAINED,
        IncidentStatus.RESOLVED,
        IncidentStatus.CLOSED,
    },
    IncidentStatus.INVESTIGATING: {
        IncidentStatus.CONTAINED,
        IncidentStatus.RESOLVED,
        IncidentStatus.CLOSED,
    },
    IncidentStatus.CONTAINED: {
        IncidentStatus.INVESTIGATING,
        IncidentStatus.RESOLVED,
        IncidentStatus.CLOSED,
    },
    # Reopening goes back to investigating.
    IncidentStatus.RESOLVED: {IncidentStatus.INVESTIGATING, IncidentStatus.CLOSED},
    IncidentStatus.CLOSED: {IncidentStatus.INVESTIGATING},
}
# Incidents that new alerts may still join.
OPEN_INCIDENT_STATUSES = frozenset(
    {IncidentStatus.NEW, IncidentStatus.INVESTIGATING, IncidentStatus.CONTAINED}
)


def alert_transition_allowed(old, new):
    return new in ALERT_TRANSITIONS.get(old, ())


def incident_transition_allowed(old, new):
    return new in INCIDENT_TRANSITIONS.get(old, ())


class Priority(models.IntegerChoices):
    P1 = 1, "P1 (urgent)"
    P2 = 2, "P2 (high)"
    P3 = 3, "P3 (medium)"
    P4 = 4, "P4 (low)"


PRIORITY_FOR_SEVERITY = {
    Severity.CRITICAL: Priority.P1,
    Severity.HIGH: Priority.P2,
    Severity.MEDIUM: Priority.P3,
    Severity.LOW: Priority.P4,
}


class AlertQuerySet(models.QuerySet):
    def for_payload(self):
        """What `AlertSerializer` reads, in one query."""
        return self.select_related("assigned_analyst", "incident")

    def with_severity_rank(self):
        return self.annotate(severity_rank=severity_rank_expression())


class Alert(models.Model):
    """A detection that needs a human: raised by the log pipeline or an integration.

    An analyst takes ownership of it (which puts it into one of their incidents), works it
    and closes it. The same detection delivered twice (same `source` and non-empty
    `external_id`) is one alert whose `occurrence_count` and `last_seen_at` grow.
    """

    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    severity = models.CharField(max_length=16, choices=Severity.choices, db_index=True)
    status = models.CharField(
        max_length=20, choices=AlertStatus.choices, default=AlertStatus.NEW, db_index=True
    )
    category = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="e.g. brute_force, web_scan, malware"
    )
    source = models.CharField(
        max_length=128, db_index=True, help_text="Who raised it: pipeline, an integration's name."
    )
    source_system = models.CharField(
        max_length=128, blank=True, help_text="The product or host that detected it."
    )
    rule_id = models.CharField(max_length=128, blank=True)
    rule_name = models.CharField(max_length=300, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    source_port = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(65535)]
    )
    destination_ip = models.GenericIPAddressField(null=True, blank=True)
    destination_port = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(65535)]
    )
    affected_host = models.CharField(max_length=255, blank=True)
    affected_user = models.CharField(max_length=255, blank=True)
    confidence = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="0.0-1.0",
    )
    risk_score = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(100)], help_text="0-100"
    )
    external_id = models.CharField(
        max_length=255, blank=True, help_text="The id the source gives it; unique per source."
    )
    correlation_key = models.CharField(
        max_length=255,
        blank=True,
        db_index=True,
        help_text="Alerts with the same key join the same analyst's open incident.",
    )
    details = models.JSONField(default=dict, blank=True, help_text="Anything else the source sent.")
    assigned_analyst = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_alerts",
    )
    incident = models.ForeignKey(
        "Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    # Who raised it through the API (null: the pipeline or a command): that account may
    # update it by delivering it again (`services.ingest_alert`).
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    occurrence_count = models.PositiveIntegerField(default=1)
    detected_at = models.DateTimeField(default=timezone.now, db_index=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_seen_at = models.DateTimeField(default=timezone.now)
    first_response_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=~Q(external_id=""),
                name="incidents_alert_unique_source_external_id",
            ),
        ]
        permissions = [
            ("reassign_alert", "Can take over alerts owned by others"),
            ("change_others_alert", "Can change the status of alerts owned by others"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.title}"

    @property
    def is_closed(self):
        return self.status in CLOSED_ALERT_STATUSES


class IncidentQuerySet(models.QuerySet):
    def for_payload(self):
        """What `IncidentSerializer` reads: owner in the row, alert ids in one more query."""
        return self.select_related("owner", "created_by").prefetch_related(
            models.Prefetch(
                "alerts", queryset=Alert.objects.only("id", "incident_id").order_by("id")
            )
        )

    def visible_to(self, user):
        """Incidents this user may see: all with `view_all_incidents`, else the ones they
        own or watch (and none without `view_incident`)."""
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        if user.has_perm("incidents.view_all_incidents"):
            return self
        if not user.has_perm("incidents.view_incident"):
            return self.none()
        watching = IncidentWatcher.objects.filter(incident=OuterRef("pk"), user=user)
        return self.filter(Q(owner=user) | Exists(watching))

    def with_severity_rank(self):
        return self.annotate(severity_rank=severity_rank_expression())


class Incident(models.Model):
    """A case an analyst works: one or more alerts, a status, an owner, a timeline.

    `reference` is the human id (`INC-2026-0001`), numbered per calendar year (UTC) by
    `IncidentCounter` when the incident is first saved.
    """

    reference = models.CharField(max_length=32, unique=True, editable=False)
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    severity = models.CharField(max_length=16, choices=Severity.choices, db_index=True)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.P3)
    status = models.CharField(
        max_length=20, choices=IncidentStatus.choices, default=IncidentStatus.NEW, db_index=True
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_incidents",
    )
    created_by = user_reference()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    contained_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="merged_from",
        help_text="The incident this one was merged into (it is then closed).",
    )

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("view_all_incidents", "Can see all incidents")]

    def __str__(self):
        return f"{self.reference} {self.title}"

    def save(self, *args, **kwargs):
        if self.reference:
            return super().save(*args, **kwargs)
        # The counter row stays locked until this transaction ends, so the number and the
        # incident that carries it commit (or roll back) together.
        year = self.created_at.astimezone(UTC).year
        try:
            with transaction.atomic():
                self.reference = f"INC-{year}-{IncidentCounter.next_number(year):04d}"
                super().save(*args, **kwargs)
        except BaseException:
            self.reference = ""  # the number was rolled back with the row
            raise

    @property
    def is_open(self):
        return self.status in OPEN_INCIDENT_STATUSES


class IncidentCounter(models.Model):
    """The last incident number handed out in a year; one row per year."""

    year = models.PositiveSmallIntegerField(primary_key=True)
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"{self.year}: {self.last_number}"

    @classmethod
    def next_number(cls, year):
        """The next number for `year`. Must run inside a transaction: concurrent callers
        queue on the year's row lock, so no two incidents get the same number."""
        try:
            counter = cls.objects.select_for_update().get(year=year)
        except cls.DoesNotExist:
            try:
                # The year's first incident creates the row. Of two first incidents at
                # once, the loser's insert fails (PostgreSQL makes it wait for the winner's
                # commit first); it then queues on the winner's row like everyone else.
                with transaction.atomic():
                    cls.objects.create(year=year, last_number=1)
                return 1
            except IntegrityError:
                counter = cls.objects.select_for_update().get(year=year)
        counter.last_number += 1
        counter.save(update_fields=["last_number"])
        return counter.last_number


class TimelineKind(models.TextChoices):
    CREATED = "created", "Created"
    STATUS_CHANGED = "status_changed", "Status changed"
    FIELD_CHANGED = "field_changed", "Field changed"
    OWNER_CHANGED = "owner_changed", "Owner changed"
    ALERT_ADDED = "alert_added", "Alert added"
    ALERT_REMOVED = "alert_removed", "Alert removed"
    COMMENT = "comment", "Comment"
    MERGED = "merged", "Merged"
    RESPONSE = "response", "Response action"
    THREAT_DETECTED = "threat_detected", "Threat detected"


class IncidentTimelineEntry(models.Model):
    """One thing that happened to an incident: who, when, what, and the old and new values.

    Append-only; written by the services (and by admin saves)."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=20, choices=TimelineKind.choices)
    field = models.CharField(max_length=64, blank=True)
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "incident timeline entries"

    def __str__(self):
        return f"{self.incident_id} {self.kind} {self.message}"


class IncidentComment(models.Model):
    """A note an analyst adds to an incident."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"comment {self.pk} on {self.incident_id}"


class IncidentWatcher(models.Model):
    """A user who follows an incident they don't own: they receive its `incident_*` events
    and see it in lists."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="watchers")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watched_incidents"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["incident", "user"], name="incidents_unique_watcher")
        ]

    def __str__(self):
        return f"{self.user_id} watches {self.incident_id}"


# --- Log ingest and security events (the detection pipeline) -----------------------------


class RawLogStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PARSING = "parsing", "Parsing"
    ANALYSIS = "analysis", "Analysis"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


# Statuses of a raw log that is done with, one way or the other.
FINISHED_RAW_LOG_STATUSES = frozenset({RawLogStatus.COMPLETED, RawLogStatus.FAILED})


class RawLog(models.Model):
    """A batch of log lines handed to the pipeline: an upload, a file given to
    `ingest_logs`, or a batch of lines a watcher read.

    The lines are in `content`, or, for files given to `manage.py ingest_logs`, read from
    `file_path` on the server (never set from the REST API). `status` moves received ->
    parsing -> analysis -> completed, or to failed with `error` saying why; `stage` is the
    last stage reached (where it failed, for a failed log). Counters grow chunk by chunk
    while it is processed, so the REST status shows progress.
    """

    source = models.CharField(
        max_length=128, db_index=True, help_text="Where the lines come from: auth.log, nginx..."
    )
    file_name = models.CharField(
        max_length=255, blank=True, help_text="The uploaded file's name or the file read."
    )
    file_path = models.CharField(
        max_length=1024,
        blank=True,
        editable=False,
        help_text="A server file to read instead of `content` (ingest_logs only).",
    )
    content = models.TextField(blank=True)
    size = models.PositiveBigIntegerField(default=0, help_text="Bytes received or to read.")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    status = models.CharField(
        max_length=16,
        choices=RawLogStatus.choices,
        default=RawLogStatus.RECEIVED,
        db_index=True,
    )
    stage = models.CharField(
        max_length=16, choices=RawLogStatus.choices, default=RawLogStatus.RECEIVED
    )
    progress = models.FloatField(default=0.0, help_text="0.0-1.0")
    lines_total = models.PositiveIntegerField(default=0)
    lines_malformed = models.PositiveIntegerField(default=0)
    lines_unknown = models.PositiveIntegerField(
        default=0, help_text="Lines no parser recognised (kept as category unknown)."
    )
    events_created = models.PositiveIntegerField(default=0)
    alerts_raised = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    processing_time = models.FloatField(
        null=True, blank=True, help_text="Seconds spent processing so far."
    )
    created_by = user_reference(help_text="Who uploaded it; empty for commands and watchers.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "raw log"

    def __str__(self):
        return f"raw log {self.pk} ({self.source}, {self.status})"

    @property
    def is_finished(self):
        return self.status in FINISHED_RAW_LOG_STATUSES


def new_security_event_id():
    return str(uuid.uuid4())


class SecurityEvent(models.Model):
    """One detection of the pipeline: a rule fired on a log line.

    Published as `security_event` (threatlens-ws.md) with priority = severity; the payload
    and the REST body come from the same serializer (`incidents.security_events`). Events
    at or above `ALERT_SEVERITY_THRESHOLD` raised (or repeated) `alert`.
    """

    event_id = models.CharField(
        max_length=64, unique=True, default=new_security_event_id, editable=False
    )
    severity = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(10)], help_text="1-10"
    )
    category = models.CharField(max_length=64)
    source = models.CharField(max_length=128)
    message = models.TextField()
    timestamp = models.DateTimeField(help_text="When it happened (the log line's time).")
    analysis = models.JSONField(
        default=dict, blank=True, help_text="{threat_level, confidence, explanation}"
    )
    recommendations = models.JSONField(default=list, blank=True)
    rule_id = models.CharField(max_length=64, blank=True)
    correlation_key = models.CharField(max_length=255, blank=True, db_index=True)
    src_ip = models.GenericIPAddressField(null=True, blank=True)
    user = models.CharField(max_length=255, blank=True)
    raw_line = models.TextField(blank=True)
    details = models.JSONField(
        default=dict, blank=True, help_text="The line's fields and the rule's numbers."
    )
    raw_log = models.ForeignKey(
        RawLog, null=True, blank=True, on_delete=models.SET_NULL, related_name="security_events"
    )
    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.SET_NULL, related_name="security_events"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [
            models.Index(fields=["-timestamp", "-id"], name="incidents_se_time"),
            models.Index(fields=["category", "-timestamp"], name="incidents_se_category"),
            models.Index(fields=["source", "-timestamp"], name="incidents_se_source"),
            models.Index(fields=["severity", "-timestamp"], name="incidents_se_severity"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(severity__gte=1) & Q(severity__lte=10),
                name="incidents_securityevent_severity_1_10",
            ),
        ]

    def __str__(self):
        return f"{self.event_id} [{self.severity}] {self.message[:80]}"


# Sigma rules live in their own package; imported here so they belong to this app.
from incidents.sigma.models import SigmaRule, SigmaRuleOrigin  # noqa: E402, F401
