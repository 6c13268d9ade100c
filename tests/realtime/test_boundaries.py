"""`realtime` stands on its own: no module of it imports a project app."""

import ast
from pathlib import Path

import realtime

PROJECT_APPS = ("threatlens", "incidents", "dns")
# What imports a module, or reaches an app's model, by a name in a string.
BY_NAME = ("import_module", "import_string", "get_model")
# The app labels of the project apps, for `apps.get_model("dns", "Zone")` / "dns.Zone".
PROJECT_APP_LABELS = ("accounts", "audit", "monitoring", "ui", "incidents", "dns")
REALTIME = Path(realtime.__file__).parent


def imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) in BY_NAME
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value


def test_no_realtime_module_imports_a_project_app():
    offending = [
        f"{path.relative_to(REALTIME.parent)}: {module}"
        for path in sorted(REALTIME.rglob("*.py"))
        for module in imported_modules(path)
        if module.split(".")[0] in PROJECT_APPS + PROJECT_APP_LABELS
    ]
    assert offending == []


def test_the_scan_finds_an_import_of_a_project_app(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n    from threatlens.audit.services import record\n"
        "import dns.models\nimport_module('incidents.models')\n"
        "import_string('threatlens.health.health_report')\napps.get_model('audit.AuditLog')\n"
    )
    assert set(imported_modules(sample)) == {
        "threatlens.audit.services",
        "dns.models",
        "incidents.models",
        "threatlens.health.health_report",
        "audit.AuditLog",
    }


def test_the_project_app_labels_are_those_of_the_settings(settings):
    labels = {name.rsplit(".", 1)[-1] for name in settings.INSTALLED_APPS}
    ours = {
        name.rsplit(".", 1)[-1]
        for name in settings.INSTALLED_APPS
        if name.split(".")[0] in PROJECT_APPS
    }
    assert ours == set(PROJECT_APP_LABELS) and ours <= labels
