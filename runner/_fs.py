"""File system helpers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def cleanup_tree(path: Path) -> None:
    """rm -rf, also through directories without write or search permission (e.g. a Go module
    cache, which is read-only); a missing path is fine."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
        return
    if not path.exists():
        return
    # Open every directory up first: rmtree cannot list or empty one it may not read or write.
    os.chmod(path, 0o700)
    for root, dirs, _ in os.walk(path):
        for name in dirs:
            child = os.path.join(root, name)
            if not os.path.islink(child):
                os.chmod(child, 0o700)
    shutil.rmtree(path)
