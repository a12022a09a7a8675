"""One owner for each status write, held by the code's shape: outside each app's status.py, no
module writes a status column (an ORM update naming one, or a compare-and-swap on status_version).
A write that sneaks in elsewhere (a request path setting a phase, the reconciler updating a row
directly) fails here with its file and line."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The columns of observed state: phases, their versions, and what the runner side reports.
STATUS_COLUMNS = {
    "phase",
    "status_version",
    "state",
    "heartbeat_at",
    "enqueued_at",
    "started_at",
    "completion_time",
    "failure_message",
    "warning_message",
    "snapshot_sha256",
    "snapshot_image",
    "snapshot_size_bytes",
    "running_instances",
    "stopped_instances",
    "ready_at",
    "retired_at",
}
WRITES = {"update", "update_or_create", "bulk_update"}


def status_writes(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        if name in WRITES and STATUS_COLUMNS & set(keywords):
            yield node.lineno, f"{name}({', '.join(sorted(STATUS_COLUMNS & set(keywords)))}=...)"
        version = keywords.get("version_field")
        if name == "cas_update" and isinstance(version, ast.Constant) and version.value == "status_version":
            yield node.lineno, "cas_update(version_field='status_version')"


def modules():
    for app in ("prebuilds", "warmpools"):
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts and path.name != "status.py":
                yield path


@pytest.mark.parametrize("path", list(modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_but_status_writes_status(path):
    assert list(status_writes(path)) == []


def test_the_check_sees_a_status_write():
    """The check itself: the status modules do write status, and it finds them there."""
    assert list(status_writes(ROOT / "prebuilds" / "status.py"))
    assert list(status_writes(ROOT / "warmpools" / "status.py"))
