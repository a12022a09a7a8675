"""Warm pool instances on the local runner, from a named snapshot.

Two states that really differ in cost and readiness:
- stopped: the snapshot's compressed archive staged on the runner's own disk (its compressed size,
  no unpacked tree). Making it ready is a local decompress-and-unpack, with no transfer from the
  snapshot store (for an object store that is the slow part; for the local store it saves the
  copy).
- running: the archive restored into a workspace tree, ready to hand out at once (its full
  unpacked size on disk).
Both verify the snapshot's checksum before anything is used.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from . import checkout, devcontainer
from ._fs import cleanup_tree
from .container_run import ContainerBackend, export_workspace, pull_snapshot
from .errors import SnapshotCorrupt, StoreFull
from .lifecycle import run_lifecycle
from .snapshot import restore_snapshot
from .store import LocalSnapshotStore, SnapshotStore, human_bytes
from .uids import default_pool

CHUNK = 1 << 20


@dataclass(frozen=True)
class Provisioned:
    path: Path
    size_bytes: int  # what it occupies on the runner's disk


def stage(store: SnapshotStore, snapshot_id: str, staging_dir: Path, *, expected_sha256: str) -> Provisioned:
    """A stopped instance: copy the archive out of the store into staging_dir, checking its sha256."""
    staging_dir = Path(staging_dir)
    staging_dir.mkdir(parents=True, exist_ok=False)
    target = LocalSnapshotStore(staging_dir, fsync=False)
    digest = hashlib.sha256()
    size = 0
    try:
        with store.open_reader(snapshot_id) as source, target.open_writer(snapshot_id) as out:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            if digest.hexdigest() != expected_sha256.lower():
                out.abort()
                raise SnapshotCorrupt(
                    f"snapshot {snapshot_id} is corrupt: checksum mismatch "
                    f"(expected {expected_sha256}, got {digest.hexdigest()})"
                )
    except BaseException:
        # A full disk surfaces as StoreFull from the writer; either way nothing half-staged stays.
        cleanup_tree(staging_dir)
        raise
    return Provisioned(staging_dir, size)


def start(
    store: SnapshotStore, snapshot_id: str, workspace: Path, *, expected_sha256: str, staged: Path | None = None
) -> Provisioned:
    """A running instance: restore the snapshot into `workspace`, from a staged copy when there is
    one (no transfer from the store), else from the store."""
    source = LocalSnapshotStore(staged, fsync=False) if staged is not None else store
    try:
        info = restore_snapshot(source, snapshot_id, Path(workspace), expected_sha256=expected_sha256)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StoreFull(
                f"the runner's disk is full while restoring snapshot {snapshot_id} "
                f"({human_bytes(shutil.disk_usage(Path(workspace).parent).free)} free)"
            ) from None
        raise
    return Provisioned(info.path, tree_size(info.path))


def stage_image(backend: ContainerBackend, image: str, staging_dir: Path) -> Provisioned:
    """A stopped instance of an image snapshot: the image pulled onto the runner (the transfer), a
    folder marking the instance. Its disk is the image's layers, shared by every instance."""
    pull_snapshot(backend, image)
    Path(staging_dir).mkdir(parents=True, exist_ok=False)
    return Provisioned(Path(staging_dir), 0)


def start_image(backend: ContainerBackend, image: str, workspace: Path) -> Provisioned:
    """A running instance of an image snapshot: its workspace tree copied out of the image. (Warm
    pools hold workspace folders until their instances become containers.)"""
    try:
        export_workspace(backend, image, Path(workspace))
    except BaseException:
        cleanup_tree(Path(workspace))
        raise
    return Provisioned(Path(workspace), tree_size(Path(workspace)))


def tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def remove(path: Path) -> None:
    """Remove an instance (either kind) from the runner's disk; no error if already gone."""
    cleanup_tree(Path(path))


def build_cold(
    repository_url: str,
    branch: str,
    workspace: Path,
    *,
    limits,
    access_token: str | None = None,
    devcontainer_path: str | None = None,
    timeout_seconds: float = 3600,
    allow_unsandboxed: bool = False,
    on_lines=None,
    uids=None,
    local_sources=None,
) -> Provisioned:
    """No snapshot to start from: clone and run the prebuild lifecycle into a fresh workspace, as a
    prebuild would, without packing a snapshot, under a sandbox uid of its own leased from `uids`
    (a runner.uids.UidPool; None: the default pool). local_sources (a checkout.LocalSources) is
    where a local repository may be cloned from, checked again here as a prebuild's clone does.
    Raises the runner's errors on failure."""
    deadline = time.monotonic() + timeout_seconds
    lines = on_lines or (lambda batch: None)
    try:
        checkout.clone(
            repository_url,
            branch,
            Path(workspace),
            access_token=access_token,
            deadline=deadline,
            on_line=lambda stream, text: lines([("clone", stream, text)]),
            local_sources=local_sources,
        )
        config = devcontainer.load_devcontainer(Path(workspace), devcontainer_path)
        if config is not None and config.hooks:
            with (uids or default_pool()).lease() as uid:
                run_lifecycle(
                    config,
                    workspace=Path(workspace),
                    limits=limits,
                    on_lines=lines,
                    deadline=deadline,
                    allow_unsandboxed=allow_unsandboxed,
                    uid=uid,
                )
    except BaseException:
        cleanup_tree(Path(workspace))
        raise
    return Provisioned(Path(workspace), tree_size(Path(workspace)))
