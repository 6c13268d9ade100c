"""Sampling the server with py-spy during a phase, and summarising where its time went.

py-spy writes collapsed stacks (`raw`; by default it pauses the server at each sample,
which keeps stacks exact), from which `flamegraph_svg` draws a flame graph and
`summarise` reads: the functions with the most samples on top of the stack (self time)
and on the stack at all (inclusive), the latter restricted to ThreatLens's own code
(`realtime/`, `threatlens/`), so the hub/connection/consumer path stands out.
"""

import functools
import linecache
import re
import shutil
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

# Leaf frames of threads that wait (a pool worker on its queue, a condition): py-spy can
# count them as active, and they are not CPU.
IDLE_LEAVES = (
    "_worker (concurrent/futures/thread.py:81)",
    "Condition.wait (threading.py",
    "Thread._wait_for_tstate_lock (threading.py",
)
# A leaf on a line that calls time.sleep: py-spy shows the C call as its caller's line, and
# counts the sleeping thread (incidents/processing.py's resume_in_background, dns/bulk.py's
# fail_interrupted_in_background) as busy.
SLEEP_CALL = re.compile(r"(?<![\w.])(?:time\.)?sleep\(")
ROOT = Path(__file__).resolve().parent.parent
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
OUR_CODE = ("realtime/", "threatlens/", "bench/")


def py_spy():
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def start(pid, duration, prefix, rate=100, nonblocking=False, gil=False):
    """Start sampling `pid` for `duration` seconds; returns the py-spy processes. With
    `gil`, only the thread holding the interpreter lock is sampled: where the Python
    CPU of the process goes, waits (sockets, the database, the event loop idle) left out."""
    binary = py_spy()
    if binary is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    common = [
        binary,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(round(duration)))),
        "--rate",
        str(rate),
    ]
    if nonblocking:
        common.append("--nonblocking")
    if gil:
        common.append("--gil")
    log = open(f"{prefix}.txt.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [*common, "--format", "raw", "-o", f"{prefix}.txt"], stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    return [process]


def wait(processes, timeout=60):
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()


def flamegraph_svg(raw_path, svg_path, width=1600, row=16):
    """A flame graph (SVG, hover for names and shares) of py-spy's collapsed stacks, idle
    waits of pool threads left out."""
    from html import escape

    root = {"n": 0, "children": {}}
    for stack, count in _samples(raw_path)[0]:
        node = root
        node["n"] += count
        for frame in stack.split(";"):
            node = node["children"].setdefault(frame, {"n": 0, "children": {}})
            node["n"] += count
    total = max(1, root["n"])
    rects, depth_max = [], 0

    def walk(node, x, depth):
        nonlocal depth_max
        depth_max = max(depth_max, depth)
        for name, child in sorted(node["children"].items()):
            w = width * child["n"] / total
            if w >= 0.3:
                rects.append((x, depth, w, name, child["n"]))
                walk(child, x, depth + 1)
            x += w

    walk(root, 0.0, 0)
    height = (depth_max + 2) * row
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="monospace" font-size="11">',
        f'<text x="4" y="12">{escape(Path(raw_path).name)}: {total} samples</text>',
    ]
    for x, depth, w, name, count in rects:
        y = height - (depth + 1) * row
        hue = 20 + zlib.crc32(name.split(" (")[0].encode()) % 40
        label = escape(name.split(" (")[0]) if w > 60 else ""
        parts.append(
            f"<g><title>{escape(name)}: {count} samples ({100 * count / total:.1f}%)</title>"
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" '
            f'fill="hsl({hue},80%,60%)"/>'
            f'<text x="{x + 2:.1f}" y="{y + row - 4}">{label[: int(w / 7)]}</text></g>'
        )
    parts.append("</svg>")
    Path(svg_path).write_text("\n".join(parts))


def _short(file):
    for marker in ("site-packages/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    for root in OUR_CODE:
        index = file.find("/" + root)
        if index >= 0:
            return file[index + 1 :]
    return file


def _samples(raw_path):
    """(stack, samples) of py-spy's collapsed stacks, idle waits left out; and how many
    samples were idle."""
    stacks, idle = [], 0
    for line in Path(raw_path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        if any(marker in leaf for marker in IDLE_LEAVES) or sleeping(leaf):
            idle += int(count)
            continue
        stacks.append((stack, int(count)))
    return stacks, idle


@functools.lru_cache(maxsize=4096)
def sleeping(frame):
    """Whether py-spy's `frame` ("function (file:line)") is a line calling time.sleep."""
    match = FRAME.match(frame.strip())
    if match is None or not match["line"]:
        return False
    path = Path(match["file"])
    source = linecache.getline(str(path if path.is_absolute() else ROOT / path), int(match["line"]))
    return bool(SLEEP_CALL.search(source))


def summarise(raw_path, top=20):
    """Self and inclusive sample counts per function from py-spy's collapsed stacks."""
    own, inclusive = Counter(), Counter()
    total = 0
    stacks, idle = _samples(raw_path)
    for stack, samples in stacks:
        total += samples
        names = []
        for frame in stack.split(";"):
            match = FRAME.match(frame.strip())
            if match:
                names.append(f"{match['function']} ({_short(match['file'])})")
            else:
                names.append(frame.strip())
        if names:
            own[names[-1]] += samples
        for name in set(names):
            inclusive[name] += samples
    ours = Counter(
        {name: count for name, count in inclusive.items() if any(r in name for r in OUR_CODE)}
    )
    return {
        "samples": total,
        "idle": idle,
        "self": own.most_common(top),
        "inclusive_ours": ours.most_common(top),
    }


# Where a sample's time goes on the delivery path: the first rule that matches names it.
# A rule is (name, markers of which one must be in the stack, files of which one must be
# the leaf's; empty: any). Rules on the leaf alone come after the ones on the stack.
CATEGORIES = (
    ("REST publish request (DRF, JWT, permissions, its DB work)", ("APIView.dispatch",), ()),
    (
        "connect path (auth, principal, audit rows and their events)",
        (
            "SocketConsumer.connect",
            "SocketConsumer.establish",
            "_audit",
            "SocketAudit",
            "principal_for",
        ),
        (),
    ),
    ("event-table poll (DB thread)", ("_events_after", "_max_event_id"), ()),
    ("heartbeat snapshot, pings", ("Heartbeat._beat", "ClientPings._ping"), ()),
    (
        "ASGI server send: framing + socket write",
        ("",),
        ("uvicorn/protocols/websockets", "websockets/", "daphne/", "autobahn/", "twisted/"),
    ),
    ("hub fan-out: checks, direct writes, queueing", ("FanOut._pass",), ()),
    (
        "batch window ends: take, frames, batch, latency",
        ("OutboundQueue._window_ended", "SocketWriter._finish"),
        (),
    ),
    ("asyncio locks and events", ("",), ("asyncio/locks.py",)),
    ("receiving from the channel layer", ("LayerListener._listen",), ()),
    (
        "event loop (uvloop's C code: polling, callbacks, socket reads)",
        ("",),
        ("asyncio/runners.py", "asyncio/base_events.py", "asyncio/events.py"),
    ),
    ("thread pool idle/handoff", ("",), ("concurrent/futures/thread.py", "threading.py")),
)


def categorise(raw_path):
    """Share of samples per CATEGORIES entry (and "other")."""
    counts, total = Counter(), 0
    for stack, samples in _samples(raw_path)[0]:
        total += samples
        leaf = stack.rsplit(";", 1)[-1]
        for name, in_stack, leaf_files in CATEGORIES:
            if any(marker in stack for marker in in_stack) and (
                not leaf_files or any(f in leaf for f in leaf_files)
            ):
                counts[name] += samples
                break
        else:
            counts["other"] += samples
    return total, counts


def format_categories(raw_path):
    total, counts = categorise(raw_path)
    lines = [f"where the samples went ({total} samples):"]
    for name, count in counts.most_common():
        lines.append(f"    {100 * count / max(1, total):5.1f}%  {name}")
    return "\n".join(lines)


def format_summary(summary):
    total = summary["samples"] or 1
    lines = [
        f"py-spy: {summary['samples']} busy samples ({summary.get('idle', 0)} idle-wait samples "
        "of pool threads and sleeping threads left out)"
    ]
    lines.append("  self time (top of stack):")
    for name, count in summary["self"]:
        lines.append(f"    {100 * count / total:5.1f}%  {name}")
    lines.append("  inclusive, ThreatLens code:")
    for name, count in summary["inclusive_ours"]:
        lines.append(f"    {100 * count / total:5.1f}%  {name}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_summary(summarise(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25)))
    print(format_categories(sys.argv[1]))
