"""The `uvicorn_writes` fast path on and off in one process, by CPU time.

    python -m bench.fastpaths --clients 1000 --passes 21

N real WebSocket sockets served by uvicorn (websockets-sansio, as `make run` serves) in this
process; the clients, in a child process, read and discard. One fan-out pass offers one
event to every socket's `realtime.connection.Connection`, as the hub does; each socket has
two of them, one with the server's `SocketAccess` (the fast path) and one with the plain
one (the ASGI `send`), and passes alternate between the two. Reported: the CPU time of a
pass (`time.thread_time()`), median and quartiles of each. CPU time rather than wall time,
and both sides in the same run: on a shared machine it moves far less with the load of
other processes. bench/RESULTS.md has the figures.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import time


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_clients(port, count, ready):
    async def client(opened):
        import websockets

        async with websockets.connect(
            f"ws://127.0.0.1:{port}/", compression=None, max_size=None
        ) as ws:
            opened.append(ws)
            async for _ in ws:
                pass

    async def main():
        opened = []
        tasks = []
        for _ in range(count):
            tasks.append(asyncio.create_task(client(opened)))
            await asyncio.sleep(0.002)
        while len(opened) < count:
            await asyncio.sleep(0.05)
        ready.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


async def measure(args):
    import uvicorn

    from realtime import catalogue, servers
    from realtime.access import Principal
    from realtime.connection import Connection
    from realtime.outgoing import OutgoingEvent

    sends = []

    async def app(scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        sends.append(send)
        while (await receive())["type"] != "websocket.disconnect":
            pass

    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        lifespan="off",
        log_level="warning",
        ws_ping_interval=None,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    ready = multiprocessing.Event()
    clients = multiprocessing.Process(
        target=run_clients, args=(port, args.clients, ready), daemon=True
    )
    clients.start()
    while not ready.is_set() or len(sends) < args.clients:
        await asyncio.sleep(0.05)

    principal = Principal(
        user_id=1,
        username="bench",
        role="admin",
        group_ids=frozenset(),
        permissions=frozenset(),
        is_superuser=True,
    )

    def connections(plain):
        made = []
        for index, send in enumerate(sends):
            conn = Connection(
                send=send,
                connection_id=f"c{index}",
                client_id=f"c{index}",
                principal=principal,
                capacity=1000,
                batch_window=0,
                on_overflow=lambda c: None,
                socket=servers.PLAIN if plain else servers.access_for(send),
            )
            conn.subscriptions = catalogue.names()
            made.append(conn)
        return made

    sides = {"on": connections(False), "off": connections(True)}
    assert all(type(c.socket) is not servers.SocketAccess for c in sides["on"])
    cpu = {"on": [], "off": []}
    pad = "x" * args.pad
    for n in range(args.passes * 2 + 2):
        side = "on" if n % 2 else "off"
        message = {
            "type": "hub.event",
            "id": n + 1,
            "event_type": "config_change",
            "priority": 5,
            "timestamp": "2026-01-01T00:00:00Z",
            "data": json.dumps({"n": n, "pad": pad}),
            "users": None,
        }
        event = OutgoingEvent(message, catalogue.get("config_change"))
        started = time.thread_time()
        for conn in sides[side]:
            conn.offer(event)
        spent = time.thread_time() - started
        if n >= 2:  # the first pass of each side warms up
            cpu[side].append(spent * 1000)
        await asyncio.sleep(args.pause)
    for conn in sides["on"] + sides["off"]:
        conn.stop()
    clients.terminate()
    server.should_exit = True
    await serving
    return cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=21)
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between passes")
    parser.add_argument("--pad", type=int, default=150, help="filler bytes in each event")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threatlens.settings")
    import django

    django.setup()
    cpu = asyncio.run(measure(args))
    print(f"uvicorn_writes, {args.clients} sockets, CPU ms of one fan-out pass:")
    for side, values in cpu.items():
        q = statistics.quantiles(values, n=4)
        print(
            f"  {side:3}: median {statistics.median(values):.1f} "
            f"(quartiles {q[0]:.1f}-{q[2]:.1f}, {len(values)} passes)"
        )
    on, off = statistics.median(cpu["on"]), statistics.median(cpu["off"])
    print(f"  on/off: {on / off:.2f}")


if __name__ == "__main__":
    main()
