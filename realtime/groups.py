"""Channel-layer group names, built in one place and never from a client's string."""

from realtime import catalogue

CONTROL_GROUP = "rt.control"
"""Cluster-wide control messages: close a user's sockets, re-check their permissions."""


def event_group(event_type):
    """The group of one event type; every server process's hub joins it once."""
    catalogue.get(event_type)  # only declared types have a group
    return f"rt.event.{event_type}"
