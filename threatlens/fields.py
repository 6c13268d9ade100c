"""Model fields used alike across the apps."""

from django.conf import settings
from django.db import models


def user_reference(**options):
    """A link to the user who created, changed or granted something. The record outlives
    the account: deleting the user leaves it empty."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        **options,
    )
