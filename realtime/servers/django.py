"""Django internals read here."""

from realtime.servers import enabled, failed

# ModelBackend caches a user's permissions on the user object under these names.
PERMISSION_CACHES = ("_perm_cache", "_user_perm_cache", "_group_perm_cache")


def forget_permission_caches(user):
    """Drop ModelBackend's permission caches from `user`, which may be stale: the next
    `get_all_permissions()` reads the database. Returns False when it could not, and the
    caller must read a fresh user object instead."""
    if not enabled("django_permission_cache"):
        return False
    try:
        for cache in PERMISSION_CACHES:
            user.__dict__.pop(cache, None)
    except Exception as exc:
        failed("django_permission_cache", exc)
        return False
    return True
