"""Shared fixtures: the personas alice (analyst), bob (viewer) and carol (admin)."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import override_settings

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _fast_password_hashing():
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def _clear_cache(settings):
    """Each test starts with empty rate limits and counters. On Redis, only this run's
    cache keys go (flushdb would also wipe the channel layer and other runs' keys)."""
    from django.core.cache import cache

    if settings.REDIS_URL:
        client = cache._cache.get_client(None, write=True)
        for key in client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}.cache:*"):
            client.delete(key)
    else:
        cache.clear()
    yield


@pytest.fixture
def make_user(db):
    """make_user("dave", role="analyst", **fields) -> a user in that role's group."""

    def make(username, *, role=None, password=PASSWORD, **fields):
        user = get_user_model().objects.create_user(
            username=username, password=password, email=f"{username}@example.com", **fields
        )
        if role:
            user.groups.add(Group.objects.get(name=role))
            if role == "admin":
                user.is_staff = True
                user.save(update_fields=["is_staff"])
        return user

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice", role="analyst")


@pytest.fixture
def bob(make_user):
    return make_user("bob", role="viewer")


@pytest.fixture
def carol(make_user):
    return make_user("carol", role="admin")


@pytest.fixture
def token_for():
    """token_for(user) -> a JWT access token string."""
    from rest_framework_simplejwt.tokens import AccessToken

    return lambda user: str(AccessToken.for_user(user))


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()
