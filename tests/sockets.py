"""Socket test helpers shared by every app's tests: a JSON client over the real ASGI app."""

import asyncio
import contextlib
import json


class Client:
    """A WebsocketCommunicator with JSON helpers."""

    def __init__(self, communicator):
        self.communicator = communicator
        self.pending = []

    async def connect(self):
        connected, _ = await self.communicator.connect()
        assert connected
        return self

    async def send(self, message):
        await self.communicator.send_to(text_data=json.dumps(message))

    async def send_text(self, text):
        await self.communicator.send_to(text_data=text)

    async def receive(self, timeout=2):
        text = await self.communicator.receive_from(timeout=timeout)
        return json.loads(text)

    async def receive_raw(self, timeout=2):
        return await self.communicator.receive_from(timeout=timeout)

    async def receive_type(self, kind, timeout=2):
        """The next frame of this type, skipping others (pings, debug)."""
        while True:
            frame = await self.receive(timeout)
            if frame.get("type") == kind:
                return frame

    async def receive_event(self, name, timeout=2):
        """The next event of this event type (typed, unified, or inside a batch frame),
        skipping others. Events of a batch that come after it are kept for later calls."""
        while True:
            if self.pending:
                frame = self.pending.pop(0)
            else:
                frame = await self.receive(timeout)
                if frame.get("type") == "batch":
                    self.pending.extend(frame["events"])
                    continue
            if name in (frame.get("type"), frame.get("event_type")):
                return frame

    async def receive_nothing(self, timeout=0.3):
        return await self.communicator.receive_nothing(timeout=timeout)

    async def receive_close(self, timeout=2):
        """(error frame or None, close code) after the server closes."""
        error = None
        while True:
            output = await self.communicator.receive_output(timeout)
            if output["type"] == "websocket.close":
                return error, output.get("code")
            if output["type"] == "websocket.send" and output.get("text"):
                frame = json.loads(output["text"])
                if frame.get("type") == "error":
                    error = frame

    async def disconnect(self):
        with contextlib.suppress(Exception):
            await self.communicator.disconnect()


async def eventually(check, timeout=3.0):
    """Run the sync `check` in a thread until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await asyncio.to_thread(check)
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.05)


async def in_thread(function, *args):
    """Run sync `function` in a thread and close that thread's database connections after:
    an ended thread's connection otherwise stays checked out of PostgreSQL's pool until
    the garbage collector finds it."""

    def run():
        from django.db import connections

        try:
            return function(*args)
        finally:
            connections.close_all()

    return await asyncio.to_thread(run)
