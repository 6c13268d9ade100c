"""No private attribute of a library outside `realtime/servers/` (issue 18, house style).

The fast paths reach into uvicorn, websockets, daphne, autobahn, Twisted, Channels and
Django internals; they live in `realtime/servers/`, pinned, behind one interface with a
fallback. Everywhere else (project code, tests and bench alike) a library is used through
its public API, so that an upgrade breaks one module, loudly, and nothing else.

The check is by name, with `ast`: a private name (`_name`, not a dunder) read, written,
imported or passed to getattr-like functions is the project's own when the project defines
it (a function, class, method, class attribute, module global, an attribute its own code
assigns, or, for `module._name`, a global of an imported project module); any other is a
library's. Outside `tests/`, an attribute assigned on an object that is not `self` or `cls`
counts as the project's (a receiver noting state on a model instance); in tests, where
stand-ins of library objects are built, neither that nor a stand-in's class attribute does.
Two more rules close the gaps of the by-name check:
- a few internals named without an underscore (`UNDOCUMENTED_INTERNALS`) are flagged too;
- the private names that `realtime/servers/` reaches on library objects are known library
  internals, and are flagged outside it even where a test's stand-in class defines them.
A library private whose name the project also defines for its own objects (`_lock`) is
not told apart: that is the limit of a check by name.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = ("threatlens", "realtime", "incidents", "dns", "bench", "tests")
PROJECT_TOP_LEVEL = {*TREES, "manage"}
SERVERS = Path("realtime/servers")

# Documented public APIs of Django whose names start with an underscore. Each is in
# Django's reference documentation, so using it is using the public API:
DOCUMENTED_UNDERSCORE_NAMES = {
    # "Model _meta API": docs.djangoproject.com/en/5.2/ref/models/meta/
    "_meta",
    # "Default managers": docs.djangoproject.com/en/5.2/topics/db/managers/#default-managers
    "_default_manager",
    # "Model._state": docs.djangoproject.com/en/5.2/ref/models/instances/#state
    "_state",
}

# Library internals whose names carry no underscore, so the by-name rule cannot tell them
# from public API: each is undocumented state the project once reached into (issue 18).
UNDOCUMENTED_INTERNALS = {
    "run_on_commit",  # Django: a connection's pending on-commit callbacks
    "savepoint_ids",  # Django: a connection's open savepoints
    "rollback_exc",  # Django: the error that marked a transaction for rollback
    "needs_rollback",  # Django: read or set it through get_rollback()/set_rollback()
    "single_thread_executor",  # asgiref: SyncToAsync's shared thread
    "dataBuffer",  # Twisted: a transport's unsent data
    "co_names",  # a function's code object, read to guess a library's version
}

GETATTR_LIKE = {"getattr", "setattr", "hasattr", "delattr"}


def is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def project_files():
    yield ROOT / "manage.py"
    for tree in TREES:
        yield from sorted((ROOT / tree).rglob("*.py"))


def parse(path):
    return ast.parse(path.read_text(), filename=str(path))


def in_servers(relative):
    return relative.is_relative_to(SERVERS)


def in_tests(relative):
    return relative.parts[0] == "tests"


def _assigned_targets(node):
    if isinstance(node, ast.Assign):
        return node.targets
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        return [node.target]
    return []


def _flat(targets):
    for target in targets:
        yield from ast.walk(target)


def _self_or_cls(node):
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


class Definitions:
    """The private names the project defines: `attributes` (methods, class attributes,
    attributes its code assigns) and `globals_` (module-level names, read as
    `module._name`)."""

    def __init__(self):
        self.attributes = set()
        self.globals_ = set()

    def add_module(self, tree, *, foreign_assignments_count, class_attributes_count=True):
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.globals_.add(node.name)
            for name in _flat(_assigned_targets(node)):
                if isinstance(name, ast.Name):
                    self.globals_.add(name.id)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for member in node.body:
                    if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        self.attributes.add(member.name)
                    elif class_attributes_count:
                        for name in _flat(_assigned_targets(member)):
                            if isinstance(name, ast.Name):
                                self.attributes.add(name.id)
            for target in _flat(_assigned_targets(node)):
                if isinstance(target, ast.Attribute) and (
                    _self_or_cls(target.value) or foreign_assignments_count
                ):
                    self.attributes.add(target.attr)
            if foreign_assignments_count and isinstance(node, ast.Call):
                # `instance.__dict__.setdefault("_name", ...)`: an attribute set by name.
                named = _private_name_passed(node, methods=("setdefault",))
                if named:
                    self.attributes.add(named)


def project_definitions():
    """What the project defines. `realtime/servers/` counts for its functions, classes and
    methods only: the attributes it assigns on library objects are the library's."""
    definitions = Definitions()
    for path in project_files():
        relative = path.relative_to(ROOT)
        tree = parse(path)
        if in_servers(relative):
            # Its own classes' members and module globals; not what it assigns elsewhere.
            definitions.add_module(tree, foreign_assignments_count=False)
        elif in_tests(relative):
            # A test's stand-in for a library object may carry the library's private names.
            definitions.add_module(
                tree, foreign_assignments_count=False, class_attributes_count=False
            )
        else:
            definitions.add_module(tree, foreign_assignments_count=True)
    return definitions


def library_internals_reached_by_servers():
    """The private names `realtime/servers/` reads or writes on objects that are not its
    own (`protocol._perMessageCompress`): the library internals it is there to isolate."""
    own = Definitions()
    trees = [parse(path) for path in sorted((ROOT / SERVERS).rglob("*.py"))]
    for tree in trees:
        own.add_module(tree, foreign_assignments_count=False)
    return {
        node.attr
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and is_private(node.attr)
        and not _self_or_cls(node.value)
        and node.attr not in own.attributes | own.globals_
    }


def _project_module_names(tree):
    """Names bound in this module to project modules or their members."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PROJECT_TOP_LEVEL:
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").split(".")[0] in PROJECT_TOP_LEVEL
        ):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def library_privates_in(tree, definitions, known_internals):
    """(line, what) for each private name of a library that `tree` touches."""
    own_modules = _project_module_names(tree)

    def libraries(name, owner=None):
        if name in UNDOCUMENTED_INTERNALS:
            return True
        if not is_private(name) or name in DOCUMENTED_UNDERSCORE_NAMES:
            return False
        if name in known_internals:
            return True
        if isinstance(owner, ast.Name) and owner.id in own_modules:
            return name not in definitions.globals_ | definitions.attributes
        return name not in definitions.attributes

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and libraries(node.attr, node.value):
            yield node.lineno, f"{ast.unparse(node.value)}.{node.attr}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] not in PROJECT_TOP_LEVEL and any(is_private(p) for p in parts):
                    yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] in PROJECT_TOP_LEVEL:
                continue
            if any(is_private(p) for p in parts):
                yield node.lineno, f"from {node.module} import ..."
            for alias in node.names:
                if is_private(alias.name):
                    yield node.lineno, f"from {node.module} import {alias.name}"
        elif isinstance(node, ast.Call):
            named = _private_name_passed(node)
            if named and libraries(named):
                yield node.lineno, f"{ast.unparse(node.func)}(..., {named!r})"


def _private_name_passed(call, methods=None):
    """The constant name given to getattr/setattr/hasattr/delattr, or as the key of an
    object's `__dict__` (`x.__dict__.pop("_name")`); only to `methods` of `__dict__` when
    given."""
    func = call.func
    if (
        methods is None
        and isinstance(func, ast.Name)
        and func.id in GETATTR_LIKE
        and len(call.args) > 1
    ):
        argument = call.args[1]
    elif (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Attribute)
        and func.value.attr == "__dict__"
        and (methods is None or func.attr in methods)
        and call.args
    ):
        argument = call.args[0]
    else:
        return None
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return argument.value
    return None


def offences():
    definitions = project_definitions()
    known = library_internals_reached_by_servers()
    for path in project_files():
        relative = path.relative_to(ROOT)
        if in_servers(relative):
            continue
        for line, what in library_privates_in(parse(path), definitions, known):
            yield f"{relative}:{line} {what}"


def test_no_private_attribute_of_a_library_outside_realtime_servers():
    found = sorted(offences())
    assert found == [], (
        "use the library's public API, or move the access into realtime/servers/ behind "
        "its interface: " + "; ".join(found)
    )


def test_the_servers_package_is_where_the_library_internals_are():
    # If this fails, the fast paths no longer touch library internals (then this module's
    # second rule has nothing to add) or the scan of realtime/servers/ broke.
    assert {"_perMessageCompress"} <= library_internals_reached_by_servers()


def _offences_in(source, definitions=None, known=frozenset()):
    definitions = definitions or Definitions()
    return [what for _, what in library_privates_in(ast.parse(source), definitions, known)]


def test_the_check_finds_each_way_of_reaching_a_library_private():
    source = (
        "from asgiref.sync import SyncToAsync\n"
        "from django.db.transaction import _private\n"
        "from _pytest.monkeypatch import MonkeyPatch\n"
        "executor._threads\n"
        "SyncToAsync.single_thread_executor.submit(f)\n"
        "connection._savepoint_ids = []\n"
        "getattr(protocol, '_tempDataLen')\n"
        "instance.__dict__.pop('_cached')\n"
        "connection.rollback_exc = None\n"
    )
    assert sorted(_offences_in(source)) == sorted(
        [
            "from django.db.transaction import _private",
            "from _pytest.monkeypatch import ...",
            "executor._threads",
            "SyncToAsync.single_thread_executor",
            "connection._savepoint_ids",
            "getattr(..., '_tempDataLen')",
            "instance.__dict__.pop(..., '_cached')",
            "connection.rollback_exc",
        ]
    )


def test_the_check_lets_the_projects_own_private_names_and_documented_ones_pass():
    definitions = Definitions()
    definitions.add_module(
        ast.parse("class Hub:\n    def _stop(self):\n        self._running = False\n_hubs = {}\n"),
        foreign_assignments_count=False,
    )
    source = (
        "from realtime import hub as hub_module\n"
        "hub._stop()\nhub._running\nhub_module._hubs.clear()\n"
        "Alert._meta.get_field('title')\nUser._default_manager\nalert._state.adding\n"
        "[1, 2].__len__()\n"
    )
    assert _offences_in(source, definitions) == []


def test_a_known_library_internal_is_caught_even_where_a_stand_in_defines_it():
    definitions = Definitions()
    definitions.add_module(
        ast.parse("class Protocol:\n    def _perMessageCompress(self):\n        pass\n"),
        foreign_assignments_count=False,
    )
    source = "protocol._perMessageCompress = None\n"
    assert _offences_in(source, definitions, {"_perMessageCompress"}) == [
        "protocol._perMessageCompress"
    ]
