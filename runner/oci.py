"""Snapshots as OCI images: one layer written by the runner above the image the container ran.

Why the runner writes the layer itself rather than `podman commit`: the container ran in a user
namespace of its own (--userns=auto), and podman stores such a container's changes with the
shifted host ids and commits them so (containers/container-libs#914): the image would hold files
owned by uid 2147483647, and no container could start from it. The layer is written here instead,
from the container's overlay upper directory (what the lifecycle commands changed outside the
workspace: /usr/local/bin, apt's installs, the home folder) and the workspace, which the container
saw through a bind mount and so is not in the upper directory at all, with every id mapped back
into the container's range and overlay whiteouts turned into OCI ones.

The layer is a zstd-compressed tar (a standard OCI layer media type). It is added to an OCI layout
folder on the runner that also caches the base images' own layers, and skopeo copies the image to
the registry, which skips every blob it already holds: layers shared between snapshots are stored
once. The snapshot's checksum is its manifest digest; podman verifies it on every pull by digest.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import ssl
import stat
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from ._proc import ShouldStop
from .errors import SnapshotError, Stopped, StoreError

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+zstd"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
ZSTD_LEVEL = 3
ID_RANGE = 65536  # the size of the range --userns=auto gives a container
NOBODY = 65534
STOP_POLL = 0.25


@dataclass(frozen=True)
class IdShift:
    """The container's id mapping: container id n is host id base + n, for n < ID_RANGE."""

    uid_base: int = 0
    gid_base: int = 0

    def uid(self, host: int) -> int:
        return host - self.uid_base if self.uid_base <= host < self.uid_base + ID_RANGE else NOBODY

    def gid(self, host: int) -> int:
        return host - self.gid_base if self.gid_base <= host < self.gid_base + ID_RANGE else NOBODY


@dataclass(frozen=True)
class LayerSource:
    """A host folder that becomes `prefix` in the layer. overlay: it is an overlay upper directory
    (whiteouts and opaque folders are translated); skip: paths under it left out (relative)."""

    root: Path
    prefix: str = ""
    overlay: bool = False
    skip: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Layer:
    digest: str  # "sha256:..." of the compressed bytes, as stored
    diff_id: str  # "sha256:..." of the tar itself
    size: int  # compressed bytes


class _Sink:
    """The compressed side: hash, count and write to the blob file."""

    def __init__(self, f):
        self.f, self.hash, self.size = f, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


class _Tee:
    """The uncompressed side: hash (the diff id), count, compress, and poll for a stop."""

    def __init__(self, compressor, on_bytes: Callable[[int], None] | None, should_stop: ShouldStop | None):
        self.compressor, self.hash, self.read = compressor, hashlib.sha256(), 0
        self.on_bytes, self.should_stop = on_bytes, should_stop
        self.next_poll = time.monotonic() + STOP_POLL

    def tell(self) -> int:
        return self.read

    def write(self, data) -> int:
        self.hash.update(data)
        self.read += len(data)
        self.compressor.write(data)
        if self.on_bytes is not None:
            self.on_bytes(self.read)
        if self.should_stop is not None and time.monotonic() >= self.next_poll:
            self.next_poll = time.monotonic() + STOP_POLL
            if reason := self.should_stop():
                raise Stopped(reason)
        return len(data)


@dataclass
class Scan:
    """One walk of the sources: their tar size (for progress), the entries that are not folders,
    and the owners and groups met (GNU tar's id maps)."""

    tar_bytes: int = 0
    files: int = 0
    uids: set[int] = field(default_factory=set)
    gids: set[int] = field(default_factory=set)


def scan(sources: list[LayerSource]) -> Scan:
    result = Scan()
    for source in sources:
        root = os.lstat(source.root)
        result.uids.add(root.st_uid)
        result.gids.add(root.st_gid)
        for _path, _rel, st in _walk(source):
            mode = st.st_mode
            result.tar_bytes += 512 + (st.st_size + 511) // 512 * 512 if stat.S_ISREG(mode) else 512
            result.files += not stat.S_ISDIR(mode)
            result.uids.add(st.st_uid)
            result.gids.add(st.st_gid)
    return result


def _walk(source: LayerSource) -> Iterator[tuple[str, str, os.stat_result]]:
    """(path, path relative to the source, lstat) of everything under it, folders before their
    contents, in a stable order; plain strings (pathlib's objects cost more than the walk)."""
    root = str(source.root)
    skip = source.skip
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        prefix = "" if rel_dir == "." else rel_dir + "/"
        dirnames.sort()
        if skip:
            dirnames[:] = [name for name in dirnames if prefix + name not in skip]
        for name in dirnames:
            path = os.path.join(dirpath, name)
            yield path, prefix + name, os.lstat(path)
        for name in sorted(filenames):
            if not skip or prefix + name not in skip:
                path = os.path.join(dirpath, name)
                yield path, prefix + name, os.lstat(path)


def write_layer(
    blob_dir: Path,
    sources: list[LayerSource],
    shift: IdShift,
    *,
    on_bytes: Callable[[int], None] | None = None,
    should_stop: ShouldStop | None = None,
    scanned: Scan | None = None,
) -> Layer:
    """Write the sources as one zstd-compressed OCI layer into blob_dir (named by its digest).
    scanned: scan(sources), when the caller has it already.

    An overlay upper directory is written by Python's tarfile (whiteouts need translating; it is
    what the commands changed outside the workspace, usually small); a plain tree (the workspace,
    the bulk) by GNU tar, measured several times faster on many small files, with the ids mapped
    by --owner-map and its members placed under the prefix by --transform. The two are one
    archive: tarfile's members without an end marker, then GNU tar's (so a plain tree comes last).
    """
    plain = [source for source in sources if not source.overlay]
    if len(plain) > 1 or (plain and sources[-1] is not plain[0]):
        raise ValueError("one plain tree at most, and last")
    blob_dir.mkdir(parents=True, exist_ok=True)
    temp = blob_dir / f".layer-{os.getpid()}-{time.monotonic_ns()}"
    try:
        with open(temp, "wb") as f:
            sink = _Sink(f)
            compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1).stream_writer(sink, closefd=False)
            tee = _Tee(compressor, on_bytes, should_stop)
            # Unbuffered mode "w": every member goes to tee as it is added, and nothing more until
            # close() writes the end marker (left to GNU tar when a plain tree follows).
            tar = tarfile.TarFile(fileobj=tee, mode="w", format=tarfile.PAX_FORMAT)
            seen: set[str] = set()
            for source in sources:
                if source.overlay:
                    _add_source(tar, source, shift, seen)
                else:
                    _add_prefix(tar, source.prefix, seen)
                    _gnu_tar(tee, source, shift, blob_dir, scanned or scan([source]))
            if not plain:
                tar.close()
            compressor.flush(zstandard.FLUSH_FRAME)
            compressor.close()
        digest = "sha256:" + sink.hash.hexdigest()
        temp.replace(blob_dir / sink.hash.hexdigest())
        return Layer(digest=digest, diff_id="sha256:" + tee.hash.hexdigest(), size=sink.size)
    except OSError as exc:
        raise SnapshotError(f"cannot write the snapshot layer: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def _add_prefix(tar: tarfile.TarFile, prefix: str, seen: set[str]) -> None:
    """The folders above prefix not written yet (GNU tar writes the prefix itself)."""
    parts = prefix.strip("/").split("/")
    for i in range(1, len(parts)):
        name = "/".join(parts[:i])
        if name not in seen:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
            seen.add(name)


def _gnu_tar(tee: _Tee, source: LayerSource, shift: IdShift, scratch: Path, ids: Scan) -> None:
    uids, gids = ids.uids, ids.gids
    prefix = source.prefix.strip("/")
    with (
        tempfile.NamedTemporaryFile("w", dir=scratch, prefix=".owners-") as owners,
        tempfile.NamedTemporaryFile("w", dir=scratch, prefix=".groups-") as groups,
        tempfile.TemporaryFile() as errors,
    ):
        owners.write("".join(f"+{uid} +{shift.uid(uid)}\n" for uid in sorted(uids)))
        groups.write("".join(f"+{gid} +{shift.gid(gid)}\n" for gid in sorted(gids)))
        owners.flush()
        groups.flush()
        command = [
            "tar",
            "-c",
            "-f",
            "-",
            "-C",
            str(source.root),
            "--format=pax",
            "--numeric-owner",
            f"--owner-map={owners.name}",
            f"--group-map={groups.name}",
            *([f"--transform=s,^\\.,{prefix},"] if prefix else []),
            *(f"--exclude=./{skip}" for skip in sorted(source.skip)),
            ".",
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL)
        try:
            while data := process.stdout.read(1 << 20):
                tee.write(data)
            if process.wait() != 0:
                errors.seek(0)
                detail = errors.read().decode(errors="replace").strip().splitlines()[-1:]
                raise SnapshotError(f"cannot write the snapshot layer: tar exited with {process.returncode}: {detail}")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()


def _add_source(tar: tarfile.TarFile, source: LayerSource, shift: IdShift, seen: set[str]) -> None:
    prefix = source.prefix.strip("/")
    if prefix:
        # The folders down to the prefix (unless an earlier source had them), the last one with the
        # source folder's own owner and mode, so the layer is complete on its own.
        parts = prefix.split("/")
        for i in range(1, len(parts) + 1):
            name = "/".join(parts[:i])
            if name in seen:
                continue
            if i == len(parts):
                info = tar.gettarinfo(str(source.root), arcname=name)
                info.uid, info.gid = shift.uid(info.uid), shift.gid(info.gid)
            else:
                info = tarfile.TarInfo(name)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            info.uname = info.gname = ""
            tar.addfile(info)
            seen.add(name)
    for path, rel, st in _walk(source):
        name = f"{prefix}/{rel}" if prefix else rel
        if source.overlay and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            # overlayfs marks a deleted file with a 0/0 character device; OCI with .wh.<name>.
            head, tail = os.path.split(name)
            info = tarfile.TarInfo(os.path.join(head, ".wh." + tail))
            info.mtime = st.st_mtime
            tar.addfile(info)
            continue
        info = tar.gettarinfo(str(path), arcname=name)
        info.uid, info.gid = shift.uid(st.st_uid), shift.gid(st.st_gid)
        info.uname = info.gname = ""
        if info.isreg():
            with open(path, "rb") as f:
                tar.addfile(info, f)
        else:
            tar.addfile(info)
        if info.isdir():
            seen.add(name)
            if source.overlay and _opaque(path):
                opq = tarfile.TarInfo(os.path.join(name, ".wh..wh..opq"))
                opq.mtime = st.st_mtime
                tar.addfile(opq)


def _opaque(path: Path) -> bool:
    for attr in ("trusted.overlay.opaque", "user.overlay.opaque"):
        with contextlib.suppress(OSError):
            if os.getxattr(path, attr, follow_symlinks=False) == b"y":
                return True
    return False


# --- the runner's OCI layout ------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """An OCI image layout folder on the runner: base images' blobs (a cache) and snapshots on
    their way to the registry."""

    root: Path

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    def blob(self, digest: str) -> bytes:
        return (self.blobs / digest.removeprefix("sha256:")).read_bytes()

    def put_json(self, value: dict) -> tuple[str, int]:
        data = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        digest = hashlib.sha256(data).hexdigest()
        self.blobs.mkdir(parents=True, exist_ok=True)
        (self.blobs / digest).write_bytes(data)
        return "sha256:" + digest, len(data)

    def index(self) -> dict:
        path = self.root / "index.json"
        return json.loads(path.read_text()) if path.exists() else {"schemaVersion": 2, "manifests": []}

    def manifest_of(self, ref: str) -> dict:
        for entry in self.index()["manifests"]:
            if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref:
                return json.loads(self.blob(entry["digest"]))
        raise SnapshotError(f"{ref} is not in the runner's image layout")

    def tag(self, ref: str, digest: str, size: int) -> None:
        index = self.index()
        index["manifests"] = [
            e for e in index["manifests"] if e.get("annotations", {}).get("org.opencontainers.image.ref.name") != ref
        ]
        index["manifests"].append(
            {
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": digest,
                "size": size,
                "annotations": {"org.opencontainers.image.ref.name": ref},
            }
        )
        tmp = self.root / "index.json.tmp"
        tmp.write_text(json.dumps(index))
        tmp.replace(self.root / "index.json")

    def untag(self, ref: str, *, blobs: list[str] = ()) -> None:
        index = self.index()
        index["manifests"] = [
            e for e in index["manifests"] if e.get("annotations", {}).get("org.opencontainers.image.ref.name") != ref
        ]
        tmp = self.root / "index.json.tmp"
        tmp.write_text(json.dumps(index))
        tmp.replace(self.root / "index.json")
        for digest in blobs:
            with contextlib.suppress(FileNotFoundError):
                (self.blobs / digest.removeprefix("sha256:")).unlink()


def snapshot_manifest(layout: Layout, base_ref: str, layer: Layer, labels: dict[str, str], created_by: str) -> dict:
    """The base image's manifest and config with the layer on top."""
    base = layout.manifest_of(base_ref)
    config = json.loads(layout.blob(base["config"]["digest"]))
    config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(layer.diff_id)
    config.setdefault("history", []).append({"created_by": created_by, "comment": "prebuild snapshot"})
    inner = config.setdefault("config", {})
    inner["Labels"] = {**(inner.get("Labels") or {}), **labels}
    config_digest, config_size = layout.put_json(config)
    return {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config_size},
        "layers": [*base["layers"], {"mediaType": LAYER_MEDIA_TYPE, "digest": layer.digest, "size": layer.size}],
    }


# --- the registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    """The snapshot store of the container backend: an OCI registry. address: host:port;
    repository: where this control plane's snapshots go (one tag per snapshot)."""

    address: str
    repository: str = "prebuilds/snapshots"
    tls_verify: bool = False  # the embedded registry listens on loopback, plain HTTP
    # The embedded registry's maintenance lock (EmbeddedRegistry.maintenance_lock): pushes and
    # deletes hold it shared, its garbage collection exclusive, so a write waits for a collection
    # and a collection for the writes under way. Empty for an operator's registry.
    maintenance_lock: str = ""

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        if not self.maintenance_lock:
            yield
            return
        with open(self.maintenance_lock, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            yield

    def reference(self, snapshot_id: str) -> str:
        return f"{self.address}/{self.repository}:{snapshot_id}"

    def pinned(self, digest: str) -> str:
        return f"{self.address}/{self.repository}@{digest}"

    def _url(self, path: str) -> str:
        scheme = "https" if self.tls_verify else "http"
        return f"{scheme}://{self.address}/v2/{self.repository}/{path}"

    def manifest(self, reference: str) -> dict | None:
        request = urllib.request.Request(self._url(f"manifests/{reference}"), headers={"Accept": MANIFEST_MEDIA_TYPE})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise StoreError(f"the snapshot registry answered {exc.code} for {reference}") from exc
        except OSError as exc:
            raise StoreError(f"the snapshot registry at {self.address} is unreachable: {exc}") from exc

    def delete(self, digest: str) -> None:
        """Delete a snapshot's manifest (its layers go at the next garbage collection); no error
        if it is gone already."""
        request = urllib.request.Request(self._url(f"manifests/{digest}"), method="DELETE")
        try:
            with self.writing(), urllib.request.urlopen(request, timeout=30):
                pass
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise StoreError(f"the snapshot registry refused to delete {digest}: {exc.code}") from exc
        except OSError as exc:
            raise StoreError(f"the snapshot registry at {self.address} is unreachable: {exc}") from exc


def tool_message(stderr: str) -> str:
    """The last message of a containers tool (skopeo, podman): its msg="..." without the log frame."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return "no message"
    match = re.search(r'msg="((?:[^"\\]|\\.)*)"', lines[-1])
    return match.group(1).replace('\\"', '"') if match else lines[-1].removeprefix("Error: ")


def push(layout: Layout, ref: str, registry: Registry, snapshot_id: str, env: dict, digest_file: Path) -> str:
    """Copy the layout's image `ref` to the registry; returns the manifest digest."""
    command = [
        "skopeo",
        "copy",
        "--quiet",
        "--retry-times=3",
        f"--dest-tls-verify={'true' if registry.tls_verify else 'false'}",
        "--digestfile",
        str(digest_file),
        f"oci:{layout.root}:{ref}",
        f"docker://{registry.reference(snapshot_id)}",
    ]
    with registry.writing():
        done = subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=3600)
    if done.returncode != 0:
        raise StoreError(f"pushing the snapshot failed: {tool_message(done.stderr)}")
    return digest_file.read_text().strip()


# --- pushing over the registry's HTTP API ------------------------------------------------------

PUSH_BLOCK = 1 << 20


class _NeedsTool(Exception):
    """The registry wants what only the containers tools have (credentials, a custom CA)."""


class _Counting:
    """A file for urllib's request body that reports each block read from it."""

    def __init__(self, path: Path, on_read: Callable[[int], None], should_stop: ShouldStop | None):
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._on_read = on_read
        self._should_stop = should_stop

    def read(self, size: int = -1) -> bytes:
        if self._should_stop is not None and self._should_stop():
            raise Stopped("the snapshot push was stopped")
        data = self._file.read(PUSH_BLOCK if size is None or size < 0 else min(size, PUSH_BLOCK))
        if data:
            self._on_read(len(data))
        return data

    def close(self) -> None:
        self._file.close()


def _open(request: urllib.request.Request, timeout: float = 600):
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise _NeedsTool(f"{exc.code}") from exc
        raise StoreError(
            f"the snapshot registry answered {exc.code} to {request.get_method()}: {exc.read()[:200]!r}"
        ) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            raise _NeedsTool(str(exc.reason)) from exc
        raise StoreError(f"the snapshot registry at {request.host} is unreachable: {exc.reason}") from exc
    except OSError as exc:
        raise StoreError(f"the snapshot registry at {request.host} is unreachable: {exc}") from exc


def _has_blob(registry: Registry, digest: str) -> bool:
    request = urllib.request.Request(registry._url(f"blobs/{digest}"), method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=30):
            return True
    except OSError:  # 404; anything else, the upload that follows says what it is
        return False


def _put_blob(registry: Registry, path: Path, digest: str, on_read: Callable[[int], None], should_stop) -> None:
    start = urllib.request.Request(registry._url("blobs/uploads/"), method="POST", data=b"")
    with _open(start, timeout=30) as response:
        location = response.headers["Location"]
    if location.startswith("/"):
        location = f"{'https' if registry.tls_verify else 'http'}://{registry.address}{location}"
    body = _Counting(path, on_read, should_stop)
    try:
        put = urllib.request.Request(
            f"{location}{'&' if '?' in location else '?'}digest={digest}",
            method="PUT",
            data=body,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(path.stat().st_size)},
        )
        with _open(put):
            pass
    finally:
        body.close()


def push_over_http(
    layout: Layout,
    manifest_digest: str,
    registry: Registry,
    snapshot_id: str,
    on_fraction: Callable[[float], None],
    should_stop: ShouldStop | None = None,
) -> str | None:
    """Push the layout's manifest and its blobs the registry lacks, reporting the fraction of
    the blob bytes sent (0..1) as they go; the manifest last, with the exact bytes its digest is
    of. Returns the digest, or None when the registry needs what only skopeo has (credentials,
    a certificate authority of its own): the caller pushes with the tool then."""
    manifest_bytes = layout.blobs.joinpath(manifest_digest.removeprefix("sha256:")).read_bytes()
    manifest = json.loads(manifest_bytes)
    try:
        with registry.writing():
            missing = [b for b in [*manifest["layers"], manifest["config"]] if not _has_blob(registry, b["digest"])]
            total = max(1, sum(b["size"] for b in missing))
            sent = [0]

            def on_read(n: int) -> None:
                sent[0] += n
                on_fraction(min(1.0, sent[0] / total))

            for blob in missing:
                path = layout.blobs / blob["digest"].removeprefix("sha256:")
                _put_blob(registry, path, blob["digest"], on_read, should_stop)
            put = urllib.request.Request(
                registry._url(f"manifests/{snapshot_id}"),
                method="PUT",
                data=manifest_bytes,
                headers={"Content-Type": manifest.get("mediaType", MANIFEST_MEDIA_TYPE)},
            )
            with _open(put, timeout=60) as response:
                answered = response.headers.get("Docker-Content-Digest", manifest_digest)
    except _NeedsTool:
        return None
    if answered != manifest_digest:
        raise StoreError(f"the snapshot registry stored the manifest as {answered}, not {manifest_digest}")
    return manifest_digest
