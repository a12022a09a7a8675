"""PROCESS_TESTS_MUST_RUN: the folders of tests/processes whose tests must not be skipped in this run.

CI sets it (.ci/run): a browser test skipped because Chromium is missing, or a fault test skipped
because the PostgreSQL pass lost its Redis, fails instead of leaving the run quietly green. The
hook in tests/processes/conftest.py calls `enforce` on every report; this module is the logic.
"""

from pathlib import Path

import pytest

PROCESSES = Path(__file__).resolve().parent
VARIABLE = "PROCESS_TESTS_MUST_RUN"


def must_run_folders(value: str) -> set[str]:
    """The folder names of a PROCESS_TESTS_MUST_RUN value ("browser,faults"). A name that is no
    folder here is a usage error: a misspelt switch must not silently enforce nothing."""
    names = {name.strip() for name in value.split(",") if name.strip()}
    folders = {path.name for path in PROCESSES.iterdir() if path.is_dir() and not path.name.startswith("_")}
    unknown = sorted(names - folders)
    if unknown:
        raise pytest.UsageError(f"{VARIABLE} names no folder of tests/processes: {', '.join(unknown)}")
    return names


def folder_of(path) -> str | None:
    """The tests/processes folder a test file lies in (None for a file outside one)."""
    try:
        parts = Path(path).resolve().relative_to(PROCESSES).parts
    except ValueError:
        return None
    return parts[0] if len(parts) > 1 else None


def enforce(report: pytest.TestReport, path, value: str) -> None:
    """Turn the report of a skipped test into a failure if its folder must run (xfail stays)."""
    if not report.skipped or hasattr(report, "wasxfail") or not value.strip():
        return
    folder = folder_of(path)
    if folder not in must_run_folders(value):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"a test in tests/processes/{folder} was skipped, and {VARIABLE} forbids it: {reason}"
