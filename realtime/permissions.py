"""DRF permissions of the realtime endpoints.

They read the user's shared snapshot (`realtime.access.principal_for`), not the
permission tables: the publish endpoint is on the hot path of every published event."""

from rest_framework.permissions import BasePermission

from realtime import access
from realtime.catalogue import PUBLISH, VIEW_CONNECTIONS


def _user_may(request, permission):
    user = request.user
    return user.is_authenticated and access.principal_for(user).has_perm(permission)


class CanViewConnections(BasePermission):
    message = "Only administrators may see and close live connections."

    def has_permission(self, request, view):
        return _user_may(request, VIEW_CONNECTIONS)


class CanPublish(BasePermission):
    message = "Publishing needs the publisher permission."

    def has_permission(self, request, view):
        return _user_may(request, PUBLISH)
