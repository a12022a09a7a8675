from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from runner_testlib import MAKE_SAMPLE_REPO, RecordingReporter

from runner._fs import cleanup_tree
from runner.store import LocalSnapshotStore


@pytest.fixture
def work_dir():
    """A scratch directory the sandbox user can reach.

    pytest's tmp_path lives under /tmp/pytest-of-root, which is 0700: as root, bwrap runs as
    an unprivileged user that could not reach a workspace there.
    """
    path = Path(tempfile.mkdtemp(prefix="runner-test-", dir="/tmp"))
    path.chmod(0o711)
    yield path
    cleanup_tree(path)


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
