"""Where snapshots live.

SnapshotStore speaks only of snapshot ids and byte streams, never of paths, so an object
store can be added later beside LocalSnapshotStore.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import shutil
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO, NoReturn

from .errors import SnapshotMissing, StoreError, StoreFull

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def check_id(snapshot_id: str) -> str:
    if not _ID.match(snapshot_id):
        raise StoreError(f"invalid snapshot id {snapshot_id!r}: use letters, digits, '.', '_' and '-'")
    return snapshot_id


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class SnapshotWriter(io.RawIOBase):
    """A write-only stream that becomes the snapshot on close() and is discarded on abort().

    Used as a context manager it commits when the block succeeds and aborts when it raises.
    """

    def writable(self) -> bool:
        return True

    @abstractmethod
    def abort(self) -> None: ...

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class SnapshotStore(ABC):
    @abstractmethod
    def open_writer(self, snapshot_id: str) -> SnapshotWriter:
        """Start writing a snapshot; it replaces any snapshot with that id when committed."""

    @abstractmethod
    def open_reader(self, snapshot_id: str) -> BinaryIO:
        """Read a snapshot; raises SnapshotMissing when there is none."""

    @abstractmethod
    def exists(self, snapshot_id: str) -> bool: ...

    @abstractmethod
    def size(self, snapshot_id: str) -> int:
        """Size in bytes; raises SnapshotMissing when there is none."""

    @abstractmethod
    def delete(self, snapshot_id: str) -> None:
        """Remove the snapshot; no error when there is none."""


class LocalSnapshotStore(SnapshotStore):
    """Snapshots as files <root>/<id>.tar.zst, written to a temporary file then renamed."""

    def __init__(self, root: Path, *, fsync: bool = True):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync

    def _path(self, snapshot_id: str) -> Path:
        return self.root / f"{check_id(snapshot_id)}.tar.zst"

    def _open_temp(self, path: Path) -> BinaryIO:
        """Open the temporary file a writer fills (a seam for tests that simulate a full disk)."""
        return open(path, "xb")

    def open_writer(self, snapshot_id: str) -> SnapshotWriter:
        final = self._path(snapshot_id)
        temp = self.root / f".{snapshot_id}.{uuid.uuid4().hex}.partial"
        return _LocalWriter(self, snapshot_id, self._open_temp(temp), temp, final)

    def open_reader(self, snapshot_id: str) -> BinaryIO:
        try:
            return open(self._path(snapshot_id), "rb")
        except FileNotFoundError:
            raise SnapshotMissing(f"snapshot {snapshot_id} does not exist in the store") from None

    def exists(self, snapshot_id: str) -> bool:
        return self._path(snapshot_id).is_file()

    def size(self, snapshot_id: str) -> int:
        try:
            return self._path(snapshot_id).stat().st_size
        except FileNotFoundError:
            raise SnapshotMissing(f"snapshot {snapshot_id} does not exist in the store") from None

    def delete(self, snapshot_id: str) -> None:
        self._path(snapshot_id).unlink(missing_ok=True)

    def full_error(self, snapshot_id: str, written: int) -> StoreFull:
        try:
            free = human_bytes(shutil.disk_usage(self.root).free)
        except OSError:
            free = "unknown"
        return StoreFull(
            f"snapshot store is full: no space left in {self.root} while writing snapshot {snapshot_id} "
            f"(after {human_bytes(written)}; {free} free); free space needed: delete old snapshots "
            "or enlarge the volume, then retry"
        )


class _LocalWriter(SnapshotWriter):
    def __init__(self, store: LocalSnapshotStore, snapshot_id: str, file: BinaryIO, temp: Path, final: Path):
        self._store, self._id, self._file, self._temp, self._final = store, snapshot_id, file, temp, final
        self._written = 0
        self._done = False

    def write(self, data) -> int:
        try:
            n = self._file.write(data)
        except OSError as exc:
            self._fail(exc)
        self._written += n
        return n

    def close(self) -> None:
        if self._done or self.closed:
            return
        try:
            self._file.flush()
            if self._store.fsync:
                os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._temp, self._final)
        except OSError as exc:
            self._fail(exc)
        self._done = True
        super().close()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        # A full disk can fail the final flush too; the file goes anyway.
        with contextlib.suppress(OSError):
            self._file.close()
        self._temp.unlink(missing_ok=True)
        super().close()

    def __del__(self) -> None:
        # io.IOBase.__del__ would close(), i.e. commit, a writer that was merely dropped.
        if not self._done:
            self.abort()

    def _fail(self, exc: OSError) -> NoReturn:
        self.abort()
        if exc.errno in _FULL_ERRNOS:
            raise self._store.full_error(self._id, self._written) from None
        reason = exc.strerror or exc
        raise StoreError(f"cannot write snapshot {self._id} to {self._store.root}: {reason}") from exc
