"""A second ceiling: the same broadcast as bench/ceiling.py, as a bare ASGI app under uvicorn.

    uvicorn bench.asgi_ceiling:app --port 9000          # --ceiling asgi
    uvicorn bench.asgi_ceiling:app_tasks --port 9000    # --ceiling asgi-tasks

No Django, no Channels, no hub: subscribers get the greeting and `subscription_updated`
reply the benchmark's clients expect; each frame a publisher sends to `/publish` is
handed to every subscriber's ASGI `send`, once per event. It tells how much of the gap to
bench/ceiling.py is the ASGI server's own per-frame cost.

`app` awaits every subscriber's `send` in one loop (a stuck client would stall the others:
fine for a ceiling). `app_tasks` gives each subscriber what the hub gives each connection,
a queue and a writer task woken by an `asyncio.Event`, so that the cost of that design
alone, without Django or Channels, can be read off.
"""

import asyncio
import json
from collections import deque

GREETING = json.dumps({"type": "connection_established", "data": {"server": "asgi-ceiling"}})

subscribers = set()


class Writer:
    """A subscriber's queue and writer task (the `app_tasks` variant)."""

    def __init__(self, send):
        self.send = send
        self.queue = deque()
        self.wakeup = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self.run())

    def __call__(self, message):
        self.queue.append(message)
        self.wakeup.set()

    async def run(self):
        while True:
            if not self.queue:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            await self.send(self.queue.popleft())


async def app(scope, receive, send):
    await _serve(scope, receive, send, tasks=False)


async def app_tasks(scope, receive, send):
    await _serve(scope, receive, send, tasks=True)


async def _serve(scope, receive, send, tasks):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    publisher = scope["path"].startswith("/publish")
    if not publisher:
        await send({"type": "websocket.send", "text": GREETING})
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if publisher:
                message = {"type": "websocket.send", "text": text}
                for subscriber in list(subscribers):
                    if isinstance(subscriber, Writer):
                        subscriber(message)
                        continue
                    try:
                        await subscriber(message)
                    except Exception:
                        subscribers.discard(subscriber)
            elif text and json.loads(text).get("type") == "subscribe":
                subscriber = Writer(send) if tasks else send
                subscribers.add(subscriber)
                reply = {"type": "subscription_updated", "subscriptions": []}
                await send({"type": "websocket.send", "text": json.dumps(reply)})
    finally:
        for subscriber in [s for s in subscribers if getattr(s, "send", s) is send]:
            subscribers.discard(subscriber)
            if isinstance(subscriber, Writer):
                subscriber.task.cancel()
