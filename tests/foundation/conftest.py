"""Fixtures for the foundation tests (constants: tests/foundation/helpers.py)."""

import pytest

from tests.foundation.helpers import FOUNDATION_MIDDLEWARE, THROTTLE_BACKEND
from tests.personas import PASSWORD
from threatlens.audit.models import AuditLog


@pytest.fixture
def password():
    return PASSWORD


@pytest.fixture
def foundation_settings(settings):
    """The middleware and backend this work asks the lead to install (see the report)."""
    if FOUNDATION_MIDDLEWARE not in settings.MIDDLEWARE:
        middleware = list(settings.MIDDLEWARE)
        middleware.insert(
            middleware.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
            FOUNDATION_MIDDLEWARE,
        )
        settings.MIDDLEWARE = middleware
    settings.AUTHENTICATION_BACKENDS = [THROTTLE_BACKEND]
    return settings


@pytest.fixture
def audit_rows():
    """audit_rows("auth.login", target=user) -> that action's rows (about `target` when
    given), oldest first."""

    def rows(action, target=None):
        found = AuditLog.objects.filter(action=action).order_by("id")
        if target is not None:
            found = found.filter(target_type=target._meta.label_lower, target_id=str(target.pk))
        return list(found)

    return rows


@pytest.fixture
def obtain(api_client):
    """obtain(username, password, ip=...) -> the response of POST /api/auth/token/."""

    def post(username, password=PASSWORD, *, ip="10.0.0.1"):
        return api_client.post(
            "/api/auth/token/",
            {"username": username, "password": password},
            format="json",
            REMOTE_ADDR=ip,
        )

    return post
