"""The stored Sigma rules (imported by `incidents.models`, so they belong to the
incidents app and its permissions)."""

from django.conf import settings
from django.db import models


class SigmaRuleOrigin(models.TextChoices):
    DIRECTORY = "directory", "SIGMA_RULES_DIR"
    UPLOAD = "upload", "uploaded"
    # incidents/sigma/rules/, stored on every `migrate` (SIGMA_SHIPPED_RULES)
    SHIPPED = "shipped", "shipped with ThreatLens"


class SigmaRule(models.Model):
    """One Sigma rule (detection or correlation) as its YAML, with what we read from it.

    A rule is `loaded` (enabled and runs), `disabled`, or `refused` (`refusal_code` and
    `refusal_reason` say why: an unsupported modifier, a field our records lack, a log
    source we don't read). The YAML is the truth; the other columns are read from it when
    it is saved (by `incidents.sigma.services`), for listing and filtering.
    """

    sigma_id = models.CharField(max_length=128, unique=True)
    title = models.CharField(max_length=300, blank=True)
    name = models.CharField(max_length=300, blank=True)
    kind = models.CharField(max_length=16, default="detection")
    level = models.CharField(max_length=16, blank=True)
    author = models.CharField(max_length=300, blank=True)
    description = models.TextField(blank=True)
    references = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    techniques = models.JSONField(default=list, blank=True)
    tactics = models.JSONField(default=list, blank=True)
    logsource = models.JSONField(default=dict, blank=True)
    text = models.TextField()
    digest = models.CharField(max_length=64, blank=True)
    origin = models.CharField(
        max_length=16, choices=SigmaRuleOrigin.choices, default=SigmaRuleOrigin.UPLOAD
    )
    path = models.CharField(max_length=1024, blank=True)
    enabled = models.BooleanField(default=True)
    refusal_code = models.CharField(max_length=64, blank=True)
    refusal_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "id"]
        indexes = [models.Index(fields=["enabled", "refusal_code"])]

    def __str__(self):
        return self.title or self.sigma_id

    @property
    def state(self):
        """loaded, disabled or refused."""
        if self.refusal_code:
            return "refused"
        return "loaded" if self.enabled else "disabled"
