from __future__ import annotations

import errno
import io
import os
import subprocess
import tarfile
import time

import pytest
import zstandard
from runner_testlib import tree_manifest

from runner.errors import SnapshotCorrupt, SnapshotError, SnapshotMissing, StoreFull
from runner.snapshot import create_snapshot, restore_snapshot
from runner.store import LocalSnapshotStore


@pytest.fixture
def tree(work_dir, make_repo):
    """A checkout plus everything a snapshot must keep: modes, links, empty dirs, mtimes."""
    root = make_repo("ok", files=50)
    (root / "bin").mkdir()
    script = root / "bin" / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o750)
    for i in range(8):  # incompressible: fills small stores, and gives progress something to count
        (root / f"blob{i}.bin").write_bytes(os.urandom(1 << 20))
    (root / "private.txt").write_text("x")
    (root / "private.txt").chmod(0o600)
    (root / "empty" / "nested").mkdir(parents=True)
    (root / "link-rel").symlink_to("README.md")
    (root / "link-abs").symlink_to("/usr/bin/python3")  # like a virtualenv's bin/python
    (root / "dangling").symlink_to("does-not-exist")
    (root / "readonly-dir").mkdir()
    (root / "readonly-dir" / "f").write_text("ro")
    (root / "readonly-dir").chmod(0o555)
    old = time.time() - 86400 * 30
    os.utime(root / "README.md", (old, old))
    return root


def test_round_trip_is_identical(tree, store, work_dir):
    percents = []
    info = create_snapshot(tree, store, "snap-1", percents.append)
    assert info.size_bytes == store.size("snap-1")
    assert info.file_count == sum(1 for v in tree_manifest(tree).values() if v[0] != "dir")
    assert info.source_bytes > 50 * 1024
    assert percents[0] == 0 and percents[-1] == 100 and percents == sorted(percents)
    assert len(set(percents)) > 5  # several updates, not only 0 and 100

    restored = restore_snapshot(store, "snap-1", work_dir / "restored", expected_sha256=info.sha256)
    assert restored.path == work_dir / "restored" and restored.sha256 == info.sha256
    assert tree_manifest(work_dir / "restored") == tree_manifest(tree)
    assert (work_dir / "restored" / ".git" / "HEAD").is_file()
    assert os.access(work_dir / "restored" / "bin" / "run.sh", os.X_OK)


def test_corrupt_snapshot_is_detected_and_nothing_is_left(tree, store, work_dir):
    info = create_snapshot(tree, store, "snap-1")
    path = store.root / "snap-1.tar.zst"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotCorrupt, match=r"snapshot snap-1 is corrupt: checksum mismatch \(expected "):
        restore_snapshot(store, "snap-1", work_dir / "restored", expected_sha256=info.sha256)
    assert sorted(p.name for p in work_dir.iterdir()) == sorted(["repo-ok", "store"])


def test_missing_snapshot(store, work_dir):
    with pytest.raises(SnapshotMissing):
        restore_snapshot(store, "nope", work_dir / "restored", expected_sha256="0" * 64)
    assert not (work_dir / "restored").exists()


def test_hostile_archive_cannot_write_outside(store, work_dir):
    """Even with a valid checksum, members may not escape the destination."""
    outside = work_dir / "outside"
    outside.mkdir()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:

        def add(name, data=b"pwned", **attrs):
            member = tarfile.TarInfo(name)
            for key, value in attrs.items():
                setattr(member, key, value)
            member.size = len(data) if member.type == tarfile.REGTYPE else 0
            tar.addfile(member, io.BytesIO(data) if member.type == tarfile.REGTYPE else None)

        add("./ok.txt", b"fine")
        add("../escape-dotdot.txt")
        add(f"{outside}/escape-absolute.txt")
        add("./link", type=tarfile.SYMTYPE, linkname=str(outside))
        add("./link/escape-through-link.txt")
        add("./hard", type=tarfile.LNKTYPE, linkname=f"{outside}/victim")
    compressed = zstandard.ZstdCompressor().compress(buffer.getvalue())
    with store.open_writer("hostile") as writer:
        writer.write(compressed)
    import hashlib

    digest = hashlib.sha256(compressed).hexdigest()
    with pytest.raises(SnapshotError):  # tar reports the refused members
        restore_snapshot(store, "hostile", work_dir / "dest", expected_sha256=digest)
    assert list(outside.iterdir()) == []
    assert not (work_dir / "escape-dotdot.txt").exists()
    assert not (work_dir / "dest").exists()


class _FullDiskFile(io.RawIOBase):
    """A file that accepts `room` bytes, then fails like a full disk."""

    def __init__(self, path, room):
        self._real = open(path, "xb")  # noqa: SIM115 - closed by close()
        self._room = room

    def writable(self):
        return True

    def write(self, data):
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._real.write(data)

    def fileno(self):
        return self._real.fileno()

    def flush(self):
        if not self._real.closed:
            self._real.flush()

    def close(self):
        self._real.close()
        super().close()


class _TinyStore(LocalSnapshotStore):
    def _open_temp(self, path):
        return _FullDiskFile(path, room=10_000)


def test_store_full_is_reported_and_partial_file_removed(tree, work_dir):
    store = _TinyStore(work_dir / "tiny", fsync=False)
    with pytest.raises(StoreFull, match="snapshot store is full: .* free space needed"):
        create_snapshot(tree, store, "snap-1")
    assert list(store.root.iterdir()) == []
    assert not store.exists("snap-1")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_store_full_on_a_real_full_file_system(tree, work_dir):
    mount_point = work_dir / "small"
    mount_point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        store = LocalSnapshotStore(mount_point)
        with pytest.raises(StoreFull, match="snapshot store is full"):
            create_snapshot(tree, store, "snap-1")
        assert list(mount_point.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_writer_commits_only_on_success(store):
    with pytest.raises(RuntimeError), store.open_writer("a") as writer:
        writer.write(b"partial")
        raise RuntimeError("boom")
    assert not store.exists("a")
    writer = store.open_writer("b")
    writer.write(b"dropped without close")
    del writer
    assert not store.exists("b")
    assert list(store.root.iterdir()) == []
    with store.open_writer("c") as writer:
        writer.write(b"data")
    with store.open_reader("c") as reader:
        assert reader.read() == b"data"
    store.delete("c")
    store.delete("c")  # no error when gone
    with pytest.raises(SnapshotMissing):
        store.size("c")
