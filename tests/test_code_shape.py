"""Small classes with one job (issue 18): no class of the project, its benchmark or its tests
grows past 250 lines.

A class that needs more is doing more than one thing: split it by responsibility, as
the hub, the socket consumer and the syslog receiver were (docs/development.md)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("threatlens", "realtime", "incidents", "dns", "bench", "tests")
LIMIT = 250


def _classes():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.ClassDef):
                    yield path.relative_to(ROOT), node


def test_the_tree_has_classes_to_measure():
    assert sum(1 for _ in _classes()) > 100


def test_no_class_is_longer_than_the_limit():
    long = [
        f"{path}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines"
        for path, node in _classes()
        if node.end_lineno - node.lineno + 1 > LIMIT
    ]
    assert not long, "split by responsibility: " + "; ".join(long)
