"""What the console stores per user."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class SavedView(models.Model):
    """A filter an analyst saved for a console page: the page's query string
    (`view=open&severity=high&sort=severity`), restored by opening the page with it."""

    class Page(models.TextChoices):
        ALERTS = "alerts", "Alerts"
        EVENTS = "events", "Events"
        INCIDENTS = "incidents", "Incidents"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views"
    )
    page = models.CharField(max_length=16, choices=Page.choices)
    name = models.CharField(max_length=80)
    query = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["page", "name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "page", "name"], name="ui_savedview_unique_name_per_page"
            )
        ]

    def __str__(self):
        return f"{self.user_id} {self.page}: {self.name}"

    @property
    def url(self):
        path = {"alerts": "/alerts/", "events": "/events/", "incidents": "/incidents/"}[self.page]
        return f"{path}?{self.query}" if self.query else path


class ConsolePreferences(models.Model):
    """A user's console settings kept on the server (they follow the user to any browser):
    desktop notifications and a sound for critical alerts."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="console_preferences"
    )
    notify_critical = models.BooleanField(default=False)
    sound_critical = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "console preferences"

    def __str__(self):
        return f"preferences of {self.user_id}"
