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
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

from . import checkout, devcontainer
from ._fs import cleanup_tree
from .container_policy import vet_config
from .container_run import ContainerBackend, export_workspace, pull_snapshot, workspace_folder
from .errors import SandboxError, SnapshotCorrupt, StoreFull
from .lifecycle import run_lifecycle
from .podman import ORG_LABEL, GuardPolicy, network_option, write_guard
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


# --- instances as containers (the container backend) --------------------------------------------

# Stamped on every pool instance container, beside the organization label of every container the
# runner makes: the engine, not the database, says which instances exist and in which state.
POOL_LABEL = "dev.prebuilds.pool"
SNAPSHOT_LABEL = "dev.prebuilds.snapshot"
INSTANCE_LABEL = "dev.prebuilds.instance"
ENVIRONMENT_LABEL = "dev.prebuilds.environment"  # a container started for an environment (a miss)
# The container keeps running idle until it is handed out (as the Dev Containers CLI's own
# entrypoint loop does).
IDLE_ENTRYPOINT = "sleep"
IDLE_COMMAND = "infinity"


def is_container_instance(path: str) -> bool:
    """A pool instance's path is a folder (absolute) or, on the container backend, a container's name."""
    return bool(path) and not path.startswith("/")


def instance_container_name(instance_id) -> str:
    return f"instance-{instance_id}"


def instance_run_options(
    backend: ContainerBackend, limits, *, name: str, labels: dict[str, str], guard_dir: Path
) -> list[str]:
    """The podman run (or create) options of an instance container: the isolation of a prebuild's
    container (runner.podman.GuardPolicy: its user namespace, the class's memory, cpus and pids,
    network none unless the class allows it, then the route filter hook of runner.podman_hook),
    its name, and its labels. The one place an instance container's options are made."""
    policy = GuardPolicy(
        podman=backend.podman.binary,
        workspace="",
        run_id=name,
        organization=backend.organization,
        network=network_option(limits.allow_network),
        memory_bytes=limits.memory_bytes or 0,
        cpus=limits.cpus or 0,
        pids_limit=limits.max_processes or 0,
        allowed_private_networks=list(limits.allowed_private_networks),
    )
    options = [option for option in policy.run_options() if not option.startswith("--name=")]
    if policy.network != "none":
        # write_guard writes the hook (and the policy file the hook reads) for a networked container.
        write_guard(Path(guard_dir), policy)
        options.insert(0, f"--hooks-dir={Path(guard_dir) / 'hooks'}")
    options.append(f"--name={name}")
    options += [f"--label={key}={value}" for key, value in sorted(labels.items())]
    return options


def create_container(
    backend: ContainerBackend,
    image: str,
    limits,
    *,
    name: str,
    labels: dict[str, str],
    guard_dir: Path,
    start: bool,
) -> Provisioned:
    """An instance container from a snapshot image: created (a stopped instance: the image on the
    runner, the container made, nothing running) or also started (a running one, idle). Its disk
    is its writable layer over the image's layers, which every instance shares."""
    pull_snapshot(backend, image)
    options = instance_run_options(backend, limits, name=name, labels=labels, guard_dir=guard_dir)
    done = backend.podman.run(
        "create", *options, f"--entrypoint={IDLE_ENTRYPOINT}", image, IDLE_COMMAND, check=False, timeout=300
    )
    if done.returncode != 0:
        remove_container(backend, name)
        raise SandboxError(f"cannot create an instance container from {image}: {_tail(done.stderr)}")
    if start:
        start_container(backend, name)
    return Provisioned(Path(name), 0)


def start_container(backend: ContainerBackend, name: str) -> None:
    done = backend.podman.run("start", name, check=False, timeout=300)
    if done.returncode != 0:
        raise SandboxError(f"cannot start the instance container {name}: {_tail(done.stderr)}")


def remove_container(backend: ContainerBackend, name: str) -> None:
    """The container and its writable layer (idempotent)."""
    backend.podman.run("rm", "-f", "-t", "0", "--ignore", name, check=False, timeout=120)


def pool_containers(backend: ContainerBackend, pool_id) -> dict[str, str]:
    """The pool's instance containers as the engine has them: name -> state (running, created, ...)."""
    done = backend.podman.run(
        "ps", "-a", "--filter", f"label={POOL_LABEL}={pool_id}", "--format", "{{.Names}} {{.State}}", timeout=60
    )
    containers = {}
    for line in done.stdout.splitlines():
        name, _, state = line.strip().partition(" ")
        if name:
            containers[name] = container_state(state)
    return containers


def container_state(text: str) -> str:
    """podman ps's State column: "running"/"created"/"exited" on newer podman; on older ones the
    human status ("Up 2 seconds", "Created", "Exited (0) 1 second ago")."""
    words = text.strip().lower().split()
    if not words:
        return ""
    return "running" if words[0] in {"up", "running"} else words[0]


def _tail(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


# --- inside an environment's container ----------------------------------------------------------

# The most of each stream an exec answers with (the rest is cut, and said to be).
EXEC_OUTPUT_CAP = 1 << 20


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    truncated: bool = False


def exec_in_container(
    backend: ContainerBackend,
    name: str,
    argv: list[str],
    *,
    user: str,
    workdir: str,
    timeout: float,
    cap: int = EXEC_OUTPUT_CAP,
) -> ExecResult:
    """argv run in the container by `podman exec`, as `user` in `workdir`; each stream capped at
    `cap` bytes. A command that outlives `timeout` is killed (exit code 124, as timeout(1) says)."""
    command = [backend.podman.binary, "exec", "-i=false", "-u", user or "root", "-w", workdir or "/", name, *argv]
    try:
        done = subprocess.run(
            command, env=backend.podman.env(), capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        out, err = exc.stdout or b"", exc.stderr or b""
        return ExecResult(124, _cut(out, cap), _cut(err, cap) + f"\n(killed after {timeout:g} s)", True)
    truncated = len(done.stdout) > cap or len(done.stderr) > cap
    return ExecResult(done.returncode, _cut(done.stdout, cap), _cut(done.stderr, cap), truncated)


def _cut(data: bytes, cap: int) -> str:
    return data[:cap].decode("utf-8", "replace")


@dataclass(frozen=True)
class ClaimedEnvironment:
    """Where a person gets in: the devcontainer's remoteUser and workspace folder in the container."""

    remote_user: str
    workspace_folder: str
    config: devcontainer.DevcontainerConfig | None


def read_environment(
    backend: ContainerBackend, name: str, image: str, configured_path: str | None = None
) -> ClaimedEnvironment:
    """The snapshot's devcontainer.json read from the container's workspace (the folder the image's
    label names), vetted as a prebuild's is (runner.container_policy.vet_config)."""
    folder = workspace_folder(backend, image)
    config = None
    for relative in devcontainer.candidate_paths(configured_path):
        done = backend.podman.run("exec", name, "cat", f"{folder}/{relative}", check=False, timeout=60)
        if done.returncode == 0:
            parsed = devcontainer.parse_devcontainer(done.stdout, relative)
            vetted = vet_config(parsed.data)
            config = replace(parsed, data=vetted.data)
            break
    data = config.data if config is not None else {}
    user = data.get("remoteUser") or data.get("containerUser") or "root"
    return ClaimedEnvironment(str(user), folder, config)


def run_claim_hooks(
    backend: ContainerBackend, name: str, where: ClaimedEnvironment, *, timeout: float, on_output
) -> str | None:
    """postCreateCommand then postStartCommand in the container, as the remoteUser in the workspace
    folder; each command's output to on_output(step, ExecResult). A failing command stops the rest:
    its message is returned (None: all ran)."""
    if where.config is None:
        return None
    deadline = time.monotonic() + timeout
    for hook in devcontainer.claim_hooks(where.config):
        for command in hook.commands:
            left = deadline - time.monotonic()
            if left <= 0:
                return f"{command.step} did not finish within {timeout:g} s"
            result = exec_in_container(
                backend, name, list(command.argv), user=where.remote_user, workdir=where.workspace_folder, timeout=left
            )
            on_output(command.step, result)
            if result.exit_code != 0:
                return f"{command.step} failed with exit code {result.exit_code}: {_tail(result.stderr)}"
    return None


def owned_containers(backend: ContainerBackend) -> list[tuple[str, dict[str, str], float | None]]:
    """Every pool instance or environment container of this organization on the runner: (name,
    labels, created as a Unix time or None when the engine does not say)."""
    done = backend.podman.run(
        "ps",
        "-a",
        "--filter",
        f"label={ORG_LABEL}={backend.organization}",
        "--format",
        "{{.Names}}\t{{.Created.Unix}}\t{{json .Labels}}",
        timeout=60,
    )
    found = []
    for line in done.stdout.splitlines():
        name, _, rest = line.partition("\t")
        created, _, labels_json = rest.partition("\t")
        try:
            labels = json.loads(labels_json) or {}
        except ValueError:
            continue
        if INSTANCE_LABEL not in labels and ENVIRONMENT_LABEL not in labels:
            continue  # a prebuild's container: its run cleans it up
        try:
            when = float(created.strip())
        except ValueError:
            when = None
        found.append((name.strip(), labels, when))
    return found
