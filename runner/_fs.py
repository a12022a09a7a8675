"""File system helpers."""

from __future__ import annotations

import contextlib
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


def replace_in_tree(root: Path, relative: str, data: bytes | None, mode: int = 0o644) -> None:
    """Remove the file at root/relative and, unless data is None, write data there with mode,
    never through a symbolic link: every folder on the way is opened with O_NOFOLLOW from root, so
    a tree that something else can change meanwhile (a container's workspace) cannot point the
    write at a file outside it. Raises OSError (ELOOP, ENOTDIR) when the way is not plain folders."""
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"not a path inside the tree: {relative!r}")
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, flags)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        name = parts[-1]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=fd)
        if data is None:
            return
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=fd)
        try:
            os.fchmod(out, mode)  # whatever the process's umask
            view = memoryview(data)
            while view:
                view = view[os.write(out, view) :]
        finally:
            os.close(out)
    finally:
        os.close(fd)
