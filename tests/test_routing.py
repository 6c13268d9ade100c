"""The project's WebSocket router hands back the consumer's coroutine and builds the scope
Channels' URLRouter would build; whatever it does not route itself goes to Channels."""

import pytest
from channels.routing import URLRouter
from django.urls import re_path

from realtime.servers.channels import Router


def routes(seen):
    async def consumer(scope, receive, send):
        seen.append(scope)

    return [
        re_path(r"^/?ws/incidents/?$", consumer),
        re_path(r"^/?ws/(?P<client_id>[^/]+)/?$", consumer, {"flavour": "hub"}),
    ]


async def scopes(router_class, scope):
    seen = []
    await router_class(routes(seen))(dict(scope), None, None)
    return seen


@pytest.mark.parametrize(
    "scope",
    [
        {"type": "websocket", "path": "/ws/incidents"},
        {"type": "websocket", "path": "/ws/client-1/"},
        {"type": "websocket", "path": "/prefix/ws/client-1", "root_path": "/prefix"},
    ],
)
async def test_the_scope_is_the_one_channels_builds(scope):
    ours = await scopes(Router, scope)
    assert ours == await scopes(URLRouter, scope)
    assert len(ours) == 1


async def test_the_consumers_coroutine_is_handed_back_not_awaited():
    seen = []
    result = Router(routes(seen))({"type": "websocket", "path": "/ws/c1"}, None, None)
    assert seen == []  # nothing ran yet: the server awaits the consumer itself
    await result
    assert seen[0]["url_route"] == {"args": (), "kwargs": {"client_id": "c1", "flavour": "hub"}}


async def test_an_unknown_path_fails_as_it_does_in_channels():
    with pytest.raises(ValueError, match="No route found"):
        await Router(routes([]))({"type": "websocket", "path": "/nowhere/at/all"}, None, None)


async def test_a_nested_router_is_left_to_channels():
    seen = []
    nested = [re_path(r"^/?ws/", Router(routes(seen)))]
    scope = {"type": "websocket", "path": "/ws/ws/c1"}
    ours = await scopes_of(Router, nested, scope, seen)
    assert ours == await scopes_of(URLRouter, nested, scope, seen)


async def scopes_of(router_class, route_list, scope, seen):
    seen.clear()
    await router_class(route_list)(dict(scope), None, None)
    return list(seen)
