"""A Sigma rule's event on the socket: `security_event` carries the ATT&CK techniques and
the rule's attribution."""

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from rest_framework.test import APIClient

from tests.pipeline.helpers import T0, ssh_failure
from tests.sigma.helpers import rule_yaml

pytestmark = pytest.mark.django_db(transaction=True)

RULE = rule_yaml(
    "sel: {user: oracle}\ncondition: sel",
    title="Login attempt as oracle",
    tags=("attack.t1078.003", "attack.initial-access"),
)


def _post(user, url, body):
    client = APIClient()
    client.force_authenticate(user)
    try:
        return client.post(url, body, format="json")
    finally:
        connections.close_all()


async def test_security_event_data_carries_the_attack_techniques(ws, alice, token_for, settings):
    settings.LOG_PROCESSING = "inline"
    client = await ws("/ws", token=token_for(alice))
    await client.receive_type("connection_established")
    await client.send({"type": "subscribe", "data": {"event_types": ["security_event"]}})
    await client.receive_type("subscription_updated")

    created = await sync_to_async(_post)(alice, "/api/sigma/rules/", {"text": RULE})
    assert created.status_code == 201
    line = ssh_failure(T0, user="oracle")
    response = await sync_to_async(_post)(
        alice, "/api/logs/", {"source": "auth.log", "content": line}
    )
    assert response.status_code == 202

    frame = await client.receive_event("security_event")
    analysis = frame["data"]["analysis"]
    assert analysis["attack"]["techniques"] == ["T1078.003"]
    assert analysis["attack"]["tactics"] == [{"name": "initial-access", "id": "TA0001"}]
    assert analysis["sigma"]["title"] == "Login attempt as oracle"
    assert frame["data"]["category"] == "sigma"
