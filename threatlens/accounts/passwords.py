"""Telling a password change from a hash upgrade at login.

Django re-hashes a correct password when it logs a user in and the hasher or its work
factor changed: the same password, a new hash, saved on the user. Its own mark of that save
is private, so `ThrottledModelBackend.authenticate` runs inside `logging_in()`, and the
audit of User saves (`threatlens.accounts.signals`) knows that a new hash saved there is
that upgrade, not a password change.
"""

from contextlib import contextmanager
from contextvars import ContextVar

_logging_in = ContextVar("threatlens_logging_in", default=False)


@contextmanager
def logging_in():
    """Run an authentication: a password hash saved inside is an upgrade, not a change."""
    token = _logging_in.set(True)
    try:
        yield
    finally:
        _logging_in.reset(token)


def is_logging_in():
    """Whether the code running is an authentication (see `logging_in`)."""
    return _logging_in.get()
