from __future__ import annotations

import subprocess
import sys

import pytest
from runner_testlib import MAKE_SAMPLE_REPO, RecordingReporter

from runner.store import LocalSnapshotStore


@pytest.fixture
def make_repo(work_dir):
    """make_repo(kind, files=None, lines=None) -> path of a fresh sample git repository."""

    def make(kind: str, *, files: int | None = None, lines: int | None = None, name: str | None = None):
        dest = work_dir / (name or f"repo-{kind}")
        argv = [sys.executable, str(MAKE_SAMPLE_REPO), kind, str(dest)]
        if files is not None:
            argv += ["--files", str(files)]
        if lines is not None:
            argv += ["--lines", str(lines)]
        subprocess.run(argv, check=True, capture_output=True)
        return dest

    return make


@pytest.fixture
def store(work_dir):
    return LocalSnapshotStore(work_dir / "store", fsync=False)


@pytest.fixture
def reporter():
    return RecordingReporter()
