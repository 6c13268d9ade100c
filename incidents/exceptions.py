"""Errors the incident services raise, each with the hub's `error_code` and an HTTP status.

REST views and the `/ws/incidents` consumer both turn them into their error shape: REST
answers `{"detail": message, "error_code": ..., **details}` with `http_status`; the socket
sends the hub's error frame with `error_code`, `message` and `details`.
"""


class IncidentsError(Exception):
    """Base class: a request the services refused. Nothing was changed."""

    error_code = "INTERNAL_ERROR"
    http_status = 500

    def __init__(self, message, *, details=None):
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def as_dict(self):
        """The REST body."""
        return {"detail": self.message, "error_code": self.error_code, **self.details}


class NotFound(IncidentsError):
    """No such alert or incident, or none the user may see."""

    error_code = "NOT_FOUND"
    http_status = 404


class PermissionDenied(IncidentsError):
    error_code = "PERMISSION_DENIED"
    http_status = 403


class ConflictError(IncidentsError):
    """The object's current state forbids the request (owned by someone else, a status
    that may not follow the current one)."""

    error_code = "CONFLICT"
    http_status = 409


class InvalidTransition(ConflictError):
    """A status that may not follow the current one; `details` has `from`, `to`, `allowed`."""


class ValidationError(IncidentsError):
    """Bad input: a missing or malformed field, an unknown status. `details["errors"]`
    maps field names (or list indexes, for bulk input) to messages."""

    error_code = "INVALID_MESSAGE"
    http_status = 400
