"""The ceiling: a plain Python `websockets` broadcast server, no Django, no Channels.

    python -m bench.ceiling --port 9000 [--loop uvloop|asyncio]

Subscribers connect to `/ws` and get the same greeting and `subscription_updated` reply as
from the hub, so the benchmark's clients run unchanged. A publisher connects to `/publish`
and sends event frames (already encoded text); each one is handed to every subscriber with
`websockets.broadcast`, once per event, no batching: the cost floor of fan-out in Python on
this machine, against which `bench.run` states our figures as ratios.
"""

import argparse
import asyncio
import json
import logging
import resource

from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed

GREETING = json.dumps({"type": "connection_established", "data": {"server": "ceiling"}})


class Ceiling:
    def __init__(self):
        self.subscribers = set()

    async def handler(self, websocket):
        if websocket.request.path.startswith("/publish"):
            await self.publisher(websocket)
        else:
            await self.subscriber(websocket)

    async def publisher(self, websocket):
        async for frame in websocket:
            broadcast(self.subscribers, frame)

    async def subscriber(self, websocket):
        await websocket.send(GREETING)
        try:
            async for message in websocket:
                request = json.loads(message)
                if request.get("type") == "subscribe":
                    names = request.get("data", {}).get("event_types", [])
                    self.subscribers.add(websocket)
                    await websocket.send(
                        json.dumps({"type": "subscription_updated", "subscriptions": names})
                    )
        except ConnectionClosed:
            pass  # a client leaving without a closing handshake is not our concern here
        finally:
            self.subscribers.discard(websocket)


async def main(port):
    ceiling = Ceiling()
    async with serve(
        ceiling.handler,
        "127.0.0.1",
        port,
        compression=None,
        ping_interval=None,
        max_size=2**24,
        backlog=4096,
    ) as server:
        await server.serve_forever()


def raise_open_files_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    raise_open_files_limit()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main(args.port))
    else:
        asyncio.run(main(args.port))
