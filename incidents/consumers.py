"""`/ws/incidents`: the incident-response socket of incidents-ws.md.

Built on the hub's SocketConsumer (auth in all four ways, limits, rate limits, ping,
replay, error frames), so alert and incident events reach it through the process hub like
every other event. Requests call the same service and query functions as the REST API.
"""

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from incidents import queries, services
from incidents.exceptions import IncidentsError
from incidents.serializers import ownership_taken_data, status_updated_data
from realtime import access
from realtime.catalogue import Family
from realtime.consumers import ProtocolError, SocketConsumer


def _as_user(function):
    """Run `function(user, data)` in a worker thread with the user read fresh, so a role
    change or deactivation counts from the next message on."""

    def run(user_id, data):
        user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
        if user is None:
            raise ProtocolError("AUTH_FAILED", "The account is no longer active")
        try:
            return function(user, data)
        except IncidentsError as exc:
            raise ProtocolError(exc.error_code, exc.message, exc.details or None) from None

    return database_sync_to_async(run)


@_as_user
def _initial_data(user, data):
    return queries.initial_data_for(user)


@_as_user
def _owned_incidents(user, data):
    return {"incidents": queries.owned_incidents_for(user)}


@_as_user
def _recent_alerts(user, data):
    return {"alerts": queries.recent_alerts_for(user)}


@_as_user
def _alert_details(user, data):
    return queries.alert_details_for(_required(data, "alert_id"), user)


@_as_user
def _incident_details(user, data):
    return queries.incident_details_for(_required(data, "incident_id"), user)


@_as_user
def _take_ownership(user, data):
    alert, incident = services.take_alert_ownership(_required(data, "alert_id"), actor=user)
    return ownership_taken_data(alert, incident)


@_as_user
def _update_status(user, data):
    alert = services.update_alert_status(
        _required(data, "alert_id"), _required(data, "status"), actor=user
    )
    return status_updated_data(alert)


@_as_user
def _watch(user, data):
    incident = services.watch_incident(_required(data, "incident_id"), actor=user)
    return {"incident_id": incident.pk, "watching": True}


@_as_user
def _unwatch(user, data):
    incident = services.unwatch_incident(_required(data, "incident_id"), actor=user)
    return {"incident_id": incident.pk, "watching": False}


def _required(data, name):
    value = data.get(name)
    if value is None or value == "":
        raise ProtocolError("INVALID_MESSAGE", f"Missing required field: {name}")
    return value


class IncidentsConsumer(SocketConsumer):
    """The incident-response socket: initial data on connect, requests, live pushes."""

    handlers = {
        "ping": "handle_ping",
        "pong": "handle_pong",
        "auth": "handle_auth",
        "get_owned_incidents": "handle_get_owned_incidents",
        "get_recent_alerts": "handle_get_recent_alerts",
        "get_alert_details": "handle_get_alert_details",
        "get_incident_details": "handle_get_incident_details",
        "take_alert_ownership": "handle_take_ownership",
        "take_ownership": "handle_take_ownership",
        "update_alert_status": "handle_update_alert_status",
        "watch_incident": "handle_watch_incident",
        "unwatch_incident": "handle_unwatch_incident",
    }

    def initial_subscriptions(self):
        return access.expand((f"family:{Family.INCIDENTS}",), self.connection.allowed)

    async def greet(self):
        try:
            data = await _initial_data(self.principal.user_id, {})
        except ProtocolError as exc:
            await self.send_error(exc.error_code, exc.message, details=exc.details)
            return
        await self.send_reply("initial_data", data, client_id=self.client_id)

    async def answer(self, reply_type, call, data, request_id):
        result = await call(self.principal.user_id, data)
        await self.send_reply(reply_type, result, request_id=request_id)

    async def handle_get_owned_incidents(self, data, request_id):
        await self.answer("owned_incidents", _owned_incidents, data, request_id)

    async def handle_get_recent_alerts(self, data, request_id):
        await self.answer("recent_alerts", _recent_alerts, data, request_id)

    async def handle_get_alert_details(self, data, request_id):
        await self.answer("alert_details", _alert_details, data, request_id)

    async def handle_get_incident_details(self, data, request_id):
        await self.answer("incident_details", _incident_details, data, request_id)

    async def handle_take_ownership(self, data, request_id):
        await self.answer("alert_ownership_taken", _take_ownership, data, request_id)

    async def handle_update_alert_status(self, data, request_id):
        await self.answer("alert_status_updated", _update_status, data, request_id)

    async def handle_watch_incident(self, data, request_id):
        await self.answer("incident_watched", _watch, data, request_id)

    async def handle_unwatch_incident(self, data, request_id):
        await self.answer("incident_unwatched", _unwatch, data, request_id)
