"""The bridge between the apps and the runner: where snapshots are kept, which limits a class's
sandbox gets, which host uids sandboxes run as, and which backend runs them (the runner's
backend: the container backend on podman, or the bubblewrap sandbox). Prebuilds and warm pools
both start sandboxes through here, so a class means the same thing to both."""

from __future__ import annotations

import os
import signal
import stat
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from projects.models import RunnerBackend
from projects.services import repository_local_sources
from runner import instances as runner_instances
from runner.checkout import LocalSources
from runner.container_run import ContainerBackend
from runner.images import EmbeddedRegistry
from runner.oci import Layout, Registry
from runner.podman import Podman, host_problem
from runner.sandbox import SandboxLimits
from runner.store import LocalSnapshotStore, SnapshotStore
from runner.uids import UidPool


def snapshot_store() -> SnapshotStore:
    """The runner's snapshot store (a directory under the data dir; an object store could be
    returned here without touching the runner)."""
    return LocalSnapshotStore(settings.SNAPSHOTS_DIR)


# The most a sandbox's /tmp may hold. It is a tmpfs, so its pages are the host's memory, which
# RLIMIT_AS does not count: a quarter of the class's memory, and never more than this.
MAX_TMP_BYTES = 512 << 20


def ensure_traversable(directory: Path) -> None:
    """The sandbox runs as an unprivileged uid that must be able to traverse the directories above
    its workspace, and must not list them (no sibling workspace is revealed): the data dir and
    `directory` are 0711, nothing more. The secret key, database and snapshots stay unreadable to it
    (0600 in 0700 folders, and not mounted anyway)."""
    directory.mkdir(mode=0o711, parents=True, exist_ok=True)
    for path in (settings.DATA_DIR, directory):
        if stat.S_IMODE(path.stat().st_mode) != 0o711:
            path.chmod(0o711)


_uid_pool: UidPool | None = None


def uid_pool() -> UidPool:
    """This host's sandbox uids (runner.uids): one per running prebuild or workspace build."""
    global _uid_pool
    if _uid_pool is None:
        _uid_pool = UidPool(
            settings.RUNNER_SANDBOX_UID_LOCK_DIR, settings.RUNNER_SANDBOX_UID_FIRST, settings.RUNNER_SANDBOX_UIDS
        )
    return _uid_pool


def sandbox_limits(environment_class) -> SandboxLimits:
    memory_bytes = environment_class.memory_mb * 1024 * 1024
    disk_bytes = environment_class.disk_gb * 1024 * 1024 * 1024
    return SandboxLimits(
        memory_bytes=memory_bytes,
        max_processes=environment_class.max_processes,
        max_file_size_bytes=disk_bytes,
        # CPU time for the whole command: the class's cores busy for the longest prebuild allowed.
        cpu_seconds=environment_class.cpu_cores * int(settings.PREBUILD_MAX_TIMEOUT.total_seconds()),
        allow_network=environment_class.allow_network,
        disk_bytes=disk_bytes,
        tmp_bytes=min(MAX_TMP_BYTES, memory_bytes // 4),
        origin=f"environment class {environment_class.display_name!r}",
        allowed_private_networks=tuple(settings.SANDBOX_ALLOWED_PRIVATE_NETWORKS),
        cpus=float(environment_class.cpu_cores),
    )


@dataclass(frozen=True)
class SandboxOptions:
    """How a sandbox for a class is started: its limits, whether an unsandboxed run is allowed (the
    backend choice on a host without bubblewrap), the host's uid pool, and the local folders a
    repository URL may name (checked again at clone time: a link may have changed since)."""

    limits: SandboxLimits
    allow_unsandboxed: bool
    uids: UidPool
    local_sources: LocalSources

    def arguments(self) -> dict:
        """As the keyword arguments runner.executor.PrebuildJob and runner.instances.build_cold take."""
        return {
            "limits": self.limits,
            "allow_unsandboxed": self.allow_unsandboxed,
            "uids": self.uids,
            "local_sources": self.local_sources,
        }


def sandbox_options(environment_class) -> SandboxOptions:
    return SandboxOptions(
        limits=sandbox_limits(environment_class),
        allow_unsandboxed=settings.RUNNER_ALLOW_UNSANDBOXED,
        uids=uid_pool(),
        local_sources=repository_local_sources(),
    )


# --- the container backend ---------------------------------------------------------------------


def podman() -> Podman:
    return Podman(home=settings.CONTAINERS_DIR / "podman", registries_conf=settings.CONTAINER_REGISTRIES_CONF)


def registry_address() -> str:
    return settings.CONTAINER_REGISTRY or f"127.0.0.1:{settings.CONTAINER_EMBEDDED_REGISTRY_PORT}"


def snapshot_registry(organization_id) -> Registry:
    """One repository per organization: a tenant's snapshots are never another's to pull."""
    embedded = embedded_registry()
    return Registry(
        registry_address(),
        repository=f"prebuilds/{organization_id}",
        tls_verify=settings.CONTAINER_REGISTRY_TLS,
        maintenance_lock=str(embedded.maintenance_lock) if embedded else "",
    )


def container_backend(environment_class) -> ContainerBackend | None:
    """The container backend for a class whose runner uses podman; None: the bubblewrap sandbox."""
    runner = environment_class.runner
    if runner.backend != RunnerBackend.PODMAN:
        return None
    return organization_container_backend(runner.organization_id)


def organization_container_backend(organization_id) -> ContainerBackend:
    engine = podman()
    engine.ensure()
    work = settings.CONTAINERS_DIR / "runs"
    work.mkdir(mode=0o700, parents=True, exist_ok=True)
    return ContainerBackend(
        podman=engine,
        cli=settings.CONTAINER_CLI,
        registry=snapshot_registry(organization_id),
        layout=Layout(settings.CONTAINERS_DIR / "layout"),
        work_dir=work,
        organization=str(organization_id),
        default_image=settings.CONTAINER_DEFAULT_IMAGE,
    )


# --- warm pool instances from either kind of snapshot -------------------------------------------


def stage_instance(prebuild, staging_dir: Path) -> runner_instances.Provisioned:
    """A stopped instance of a prebuild's snapshot: its archive copied to the runner's disk, or its
    image pulled onto the runner (then the folder only marks the instance)."""
    if prebuild.snapshot_image:
        backend = organization_container_backend(prebuild.project.organization_id)
        return runner_instances.stage_image(backend, prebuild.snapshot_image, staging_dir)
    return runner_instances.stage(
        snapshot_store(), str(prebuild.id), staging_dir, expected_sha256=prebuild.snapshot_sha256
    )


def start_instance(prebuild, workspace: Path, staged: Path | None = None) -> runner_instances.Provisioned:
    """A running instance: the snapshot's workspace tree in `workspace`."""
    if prebuild.snapshot_image:
        backend = organization_container_backend(prebuild.project.organization_id)
        return runner_instances.start_image(backend, prebuild.snapshot_image, workspace)
    return runner_instances.start(
        snapshot_store(), str(prebuild.id), workspace, expected_sha256=prebuild.snapshot_sha256, staged=staged
    )


# --- warm pool instances as containers (a snapshot image on a podman runner) --------------------


def uses_containers(pool) -> bool:
    """Whether a pool's instances are containers: its snapshot is an image and its runner runs podman.
    Otherwise they are folders (the bubblewrap backend, archive snapshots), unchanged."""
    snapshot = pool.snapshot
    return bool(snapshot is not None and snapshot.snapshot_image and pool.runner.backend == RunnerBackend.PODMAN)


def instance_labels(pool, prebuild, instance_id) -> dict[str, str]:
    return {
        runner_instances.POOL_LABEL: str(pool.id),
        runner_instances.SNAPSHOT_LABEL: str(prebuild.id),
        runner_instances.INSTANCE_LABEL: str(instance_id),
    }


def create_instance_container(pool, prebuild, instance_id, guard_dir: Path, *, start: bool):
    """A pool instance container from the prebuild's snapshot image: created (stopped) or running."""
    backend = organization_container_backend(pool.organization_id)
    return runner_instances.create_container(
        backend,
        prebuild.snapshot_image,
        sandbox_limits(pool.environment_class),
        name=runner_instances.instance_container_name(instance_id),
        labels=instance_labels(pool, prebuild, instance_id),
        guard_dir=guard_dir,
        start=start,
    )


def uses_environment_container(environment) -> bool:
    """Whether an environment that missed its pool gets a container from its snapshot's image."""
    snapshot = environment.snapshot
    return bool(
        snapshot is not None
        and snapshot.snapshot_image
        and environment.environment_class.runner.backend == RunnerBackend.PODMAN
    )


def create_environment_container(environment, guard_dir: Path):
    """A miss: a running container from the snapshot image, made as a pool's instances are."""
    prebuild = environment.snapshot
    backend = organization_container_backend(environment.organization_id)
    return runner_instances.create_container(
        backend,
        prebuild.snapshot_image,
        sandbox_limits(environment.environment_class),
        name=f"environment-{environment.id}",
        labels={
            runner_instances.ENVIRONMENT_LABEL: str(environment.id),
            runner_instances.SNAPSHOT_LABEL: str(prebuild.id),
        },
        guard_dir=guard_dir,
        start=True,
    )


def start_instance_container(pool, name: str) -> None:
    runner_instances.start_container(organization_container_backend(pool.organization_id), name)


def remove_instance_container(organization_id, name: str) -> None:
    runner_instances.remove_container(organization_container_backend(organization_id), name)


def owned_containers(organization_id):
    """The organization's pool instance and environment containers on this runner."""
    return runner_instances.owned_containers(organization_container_backend(organization_id))


def pool_containers(pool) -> dict[str, str]:
    """name -> state of the pool's instance containers, from the engine (by the pool label)."""
    return runner_instances.pool_containers(organization_container_backend(pool.organization_id), pool.id)


def delete_snapshot(prebuild) -> None:
    """A prebuild's snapshot, wherever its backend put it (idempotent)."""
    if prebuild.snapshot_image and prebuild.snapshot_sha256:
        snapshot_registry(prebuild.project.organization_id).delete("sha256:" + prebuild.snapshot_sha256)
    snapshot_store().delete(str(prebuild.id))


def container_host_problem() -> str | None:
    """Why this host's runners cannot use the container backend (None: they can)."""
    return host_problem(settings.CONTAINER_CLI)


def embedded_registry() -> EmbeddedRegistry | None:
    """The registry `serve` starts when CONTAINER_REGISTRY names none."""
    if settings.CONTAINER_REGISTRY:
        return None
    return EmbeddedRegistry(settings.CONTAINERS_DIR / "registry", settings.CONTAINER_EMBEDDED_REGISTRY_PORT)


def collect_registry_garbage() -> str:
    """Ask the embedded registry's process (`manage.py embedded_registry`, run by `serve`) to free
    the blobs nothing references. An operator's registry (CONTAINER_REGISTRY) is the operator's to
    collect: deleting a prebuild deletes its manifest there, nothing more."""
    registry = embedded_registry()
    if registry is None:
        return f"the registry {settings.CONTAINER_REGISTRY} is the operator's: its garbage collection is theirs"
    try:
        pid = int(registry.supervisor_pid_file.read_text())
        os.kill(pid, signal.SIGUSR1)
    except (OSError, ValueError):
        return "the embedded registry is not running here: nothing to collect"
    return f"garbage collection requested from the embedded registry's process {pid}"
