"""Helpers shared by the runner tests (a uniquely named module: this folder has no __init__.py).
RecordingReporter, processes_matching and tree_manifest live in tests/runner_support.py, which the
container tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.sandbox import find_bwrap
from tests.runner_support import RecordingReporter, processes_matching, tree_manifest

REPO_ROOT = Path(__file__).resolve().parents[3]
# The nearest ancestor's shared/fixtures (beside the checkout, or above a git worktree).
MAKE_SAMPLE_REPO = next(
    (
        folder / "shared" / "fixtures" / "make_sample_repo.py"
        for folder in REPO_ROOT.parents
        if (folder / "shared" / "fixtures" / "make_sample_repo.py").is_file()
    ),
    REPO_ROOT.parent / "shared" / "fixtures" / "make_sample_repo.py",
)

requires_bwrap = pytest.mark.skipif(find_bwrap() is None, reason="bubblewrap (bwrap) is not installed")

__all__ = ["MAKE_SAMPLE_REPO", "RecordingReporter", "processes_matching", "requires_bwrap", "tree_manifest"]
