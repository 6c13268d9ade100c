"""The authentication backend: Django's ModelBackend behind the failed-login throttle.

Set as the only AUTHENTICATION_BACKENDS entry, it refuses every login attempt while the
username or the client address is throttled (PermissionDenied stops Django's
`authenticate()`; the password is not even checked), so the Django admin's and the UI's
session login forms are throttled like `/api/auth/token/`. One backend rather than a
throttle backend in front of ModelBackend: `login(request, user)` and the test client's
`force_login` need no backend argument when there is only one.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from threatlens.accounts import passwords, throttling
from threatlens.clientinfo import request_address


class ThrottledModelBackend(ModelBackend):
    """ModelBackend that refuses attempts while `threatlens.accounts.throttling` says so."""

    def authenticate(self, request, username=None, password=None, **credentials):
        if username is None:
            username = credentials.get(get_user_model().USERNAME_FIELD)
        address = request_address(request) if request is not None else None
        if throttling.check(username, address):
            raise PermissionDenied("Too many failed login attempts.")
        with passwords.logging_in():  # a hash upgraded on the way is not a password change
            return super().authenticate(
                request, username=username, password=password, **credentials
            )
