"""Where the memory of idle connections goes: uvicorn or daphne serving ThreatLens under
tracemalloc.

    python -m bench.memprobe --port 8000 --snapshots /tmp/snaps [--server daphne]

The server runs as `uvicorn threatlens.asgi:application` (or `daphne ...`) would: same
app, same loop, in this process. The
first SIGUSR1 starts `tracemalloc` (from then on every allocation is traced, several times
slower: use it for memory questions only, never for timings) and writes a snapshot; each
further SIGUSR1 writes another, `<snapshots>/snapshot-<n>.pickle`. `bench.run --tracemalloc`
sends the first after the warm-up and the second with the N clients idle, and prints the
allocation sites that grew, per connection: what each idle connection holds.
"""

import argparse
import os
import signal
import tracemalloc
from pathlib import Path

FRAMES = 10
APPLICATION = "threatlens.asgi:application"


def serve(port, snapshots, server="uvicorn"):
    counter = {"n": 0}

    def dump(signum, frame):
        if not tracemalloc.is_tracing():
            tracemalloc.start(FRAMES)
        counter["n"] += 1
        path = Path(snapshots) / f"snapshot-{counter['n']}.pickle"
        tracemalloc.take_snapshot().dump(str(path) + ".part")
        os.replace(str(path) + ".part", path)

    signal.signal(signal.SIGUSR1, dump)
    if server == "daphne":
        from daphne.cli import CommandLineInterface

        CommandLineInterface().run(["-b", "127.0.0.1", "-p", str(port), APPLICATION])
        return
    import uvicorn

    uvicorn.run(
        APPLICATION,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        ws_per_message_deflate=False,  # as the README runs it
    )


def _site(trace_frames):
    """The innermost frame in our code or the libraries that own connection state."""
    for frame in reversed(trace_frames):
        name = frame.filename
        if "/realtime/" in name or "/threatlens/" in name:
            return f"{_short(name)}:{frame.lineno}"
    frame = trace_frames[-1]
    return f"{_short(frame.filename)}:{frame.lineno}"


def _short(name):
    for marker in ("site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in name:
            return name.split(marker, 1)[1]
    return name


def analyse(before_path, after_path, connections, top=25):
    """The allocation growth between two snapshots, per connection, by allocation site
    (the innermost line, and the innermost line of ThreatLens code that led to it)."""
    before = tracemalloc.Snapshot.load(str(before_path))
    after = tracemalloc.Snapshot.load(str(after_path))
    stats = after.compare_to(before, "traceback")
    total = sum(stat.size_diff for stat in stats)
    by_line, by_ours = {}, {}
    for stat in stats:
        frames = list(stat.traceback)  # oldest call first, the allocating line last
        line = f"{_short(frames[-1].filename)}:{frames[-1].lineno}"
        ours = _site(frames)
        for table, key in ((by_line, line), (by_ours, ours)):
            size, count = table.get(key, (0, 0))
            table[key] = (size + stat.size_diff, count + stat.count_diff)
    per = max(1, connections)
    lines = [
        f"tracemalloc: +{total / 1024 / 1024:.1f} MB traced for {connections} connections "
        f"= {total / per / 1024:.1f} KB per connection (RSS adds allocator overhead)",
        "  by allocating line (KB per connection, objects per connection):",
    ]
    for key, (size, count) in sorted(by_line.items(), key=lambda kv: -kv[1][0])[:top]:
        lines.append(f"    {size / per / 1024:6.2f} KB {count / per:6.1f}  {key}")
    lines.append("  by the innermost ThreatLens line on the stack:")
    for key, (size, count) in sorted(by_ours.items(), key=lambda kv: -kv[1][0])[:top]:
        lines.append(f"    {size / per / 1024:6.2f} KB {count / per:6.1f}  {key}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--snapshots", required=True)
    parser.add_argument("--server", choices=("uvicorn", "daphne"), default="uvicorn")
    args = parser.parse_args()
    serve(args.port, args.snapshots, args.server)
