"""Stored events: every published event is kept for the replay window (DESIGN.md)."""

from django.db import models
from django.utils import timezone


class Event(models.Model):
    """One published event. Its primary key is the `message_id` clients see and resume from.

    Kept so that a reconnecting client can be sent what it missed, and so that a server
    process can pick up events that did not reach it through the channel layer (another
    process without a shared layer, or a layer outage).
    """

    event_type = models.CharField(max_length=64, db_index=True)
    priority = models.PositiveSmallIntegerField()
    data = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    origin = models.CharField(max_length=100, help_text="The process that published it.")
    # Audience, for LISTED and USER event types: who may receive it besides see-all users.
    recipient_users = models.JSONField(null=True, blank=True)
    recipient_groups = models.JSONField(null=True, blank=True)
    # Filter metadata, copied out of `data` once so filters never look inside payloads.
    category = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["id"]
        permissions = [
            ("receive_security", "Can receive security events, alerts and incidents"),
            ("receive_system", "Can receive system and health events"),
            ("receive_dns", "Can receive DNS events of readable zones"),
            ("receive_audit", "Can receive user_action audit events"),
            ("receive_all_user_events", "Can receive every user's user-family events"),
            ("publish_event", "Can publish events through the REST API"),
            ("view_connections", "Can view and close live connections"),
        ]

    def __str__(self):
        return f"{self.event_type} #{self.pk}"

    @property
    def message_id(self):
        return str(self.pk)
