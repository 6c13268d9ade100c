"""The live connections of one hub, indexed the ways the hub looks them up."""

from collections import defaultdict


class ConnectionRegistry:
    """Every local connection by id, by subscribed event type (the fan-out reads `by_type`
    directly, once per event) and by user (control messages)."""

    def __init__(self):
        self.connections = {}  # connection id -> Connection
        self.by_type = defaultdict(set)  # event type name -> subscribed connections
        self.by_user = defaultdict(set)  # user id -> connections

    def add(self, connection):
        self.connections[connection.connection_id] = connection
        self.by_user[connection.principal.user_id].add(connection)
        self._index(connection, connection.subscriptions)

    def remove(self, connection):
        """Take a connection out of every index (idempotent). True if it was registered."""
        registered = self.connections.pop(connection.connection_id, None) is not None
        self._unindex(connection, connection.subscriptions)
        users = self.by_user.get(connection.principal.user_id)
        if users is not None:
            users.discard(connection)
            if not users:
                del self.by_user[connection.principal.user_id]
        return registered

    def set_subscriptions(self, connection, subscriptions):
        """Replace a connection's subscriptions (already checked against what it may see)."""
        subscriptions = frozenset(subscriptions) & connection.allowed
        self._unindex(connection, connection.subscriptions - subscriptions)
        self._index(connection, subscriptions - connection.subscriptions)
        connection.subscriptions = subscriptions

    def connections_of(self, user_id):
        return list(self.by_user.get(user_id, ()))

    def _index(self, connection, event_types):
        if connection.connection_id in self.connections:
            for name in event_types:
                self.by_type[name].add(connection)

    def _unindex(self, connection, event_types):
        for name in event_types:
            members = self.by_type.get(name)
            if members is not None:
                members.discard(connection)
                if not members:
                    del self.by_type[name]
