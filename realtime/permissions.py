"""DRF permissions of the realtime endpoints."""

from rest_framework.permissions import BasePermission

from realtime.catalogue import PUBLISH, VIEW_CONNECTIONS


class CanViewConnections(BasePermission):
    message = "Only administrators may see and close live connections."

    def has_permission(self, request, view):
        return request.user.is_authenticated and request.user.has_perm(VIEW_CONNECTIONS)


class CanPublish(BasePermission):
    message = "Publishing needs the publisher permission."

    def has_permission(self, request, view):
        return request.user.is_authenticated and request.user.has_perm(PUBLISH)
