"""A real container host for the container backend's tests: podman (rootful, runc, cgroupfs), the
reference Dev Containers CLI from the project's node_modules, a real OCI registry (docker-registry)
started for the session, and the base image built from Debian packages (mmdebstrap, cached across
runs in PREBUILDS_IMAGE_CACHE) pushed to it. A registries.conf mirror makes the sample
repositories' image name, mcr.microsoft.com/devcontainers/base:bookworm, resolve to that registry,
as an operator's mirror would: nothing reaches the internet."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner.container_run import ContainerBackend
from runner.executor import PrebuildJob, run_prebuild
from runner.images import EmbeddedRegistry, build_base_image, free_port, push_image
from runner.oci import Layout, Registry
from runner.podman import RUN_LABEL, Podman, host_problem
from runner.sandbox import SandboxLimits
from runner.store import LocalSnapshotStore
from runner.uids import UidPool
from tests.processes.security.test_sandbox_network import listeners  # noqa: F401 - the same listeners as bubblewrap's
from tests.runner_support import RecordingReporter

REPO_ROOT = Path(__file__).resolve().parents[3]
CLI = REPO_ROOT / "node_modules" / ".bin" / "devcontainer"
SAMPLE_IMAGE = "mcr.microsoft.com/devcontainers/base:bookworm"
IMAGE_CACHE = Path(os.environ.get("PREBUILDS_IMAGE_CACHE", "/var/tmp/prebuilds-images"))


def _missing() -> str | None:
    absent = [tool for tool in ("docker-registry", "mmdebstrap") if shutil.which(tool) is None]
    return f"not installed: {', '.join(absent)}" if absent else host_problem(CLI)


@dataclass
class ContainerHost:
    root: Path
    podman: Podman
    registry: EmbeddedRegistry

    def backend(self, work: Path, organization: str = "org-test") -> ContainerBackend:
        work.mkdir(parents=True, exist_ok=True)
        return ContainerBackend(
            podman=self.podman,
            cli=CLI,
            registry=Registry(self.registry.address, repository=f"prebuilds/{organization}"),
            layout=Layout(self.root / "layout"),
            work_dir=work,
            organization=organization,
        )

    def containers(self, run_id: str) -> list[str]:
        out = self.podman.run("ps", "-aq", "--filter", f"label={RUN_LABEL}={run_id}").stdout
        return out.split()

    def forget_sample_image(self) -> None:
        """The sample repositories' image gone from the runner: the next prebuild pulls it (through
        the mirror), and its timeline shows the pull."""
        self.podman.run("rmi", "-f", SAMPLE_IMAGE)

    def in_snapshot(self, image: str, script: str, *, user: str = "root") -> str:
        """Pull a snapshot by its digest and run script in a container made from it."""
        self.podman.run("pull", "--quiet", image, timeout=300)
        done = self.podman.run("run", "--rm", "--userns=auto", "--network=none", "-u", user, image, "sh", "-c", script)
        return done.stdout


@pytest.fixture(scope="session")
def container_host(tmp_path_factory):
    reason = _missing()
    if reason:
        pytest.skip(f"the container backend cannot run here: {reason}")
    root = tmp_path_factory.mktemp("container-host")
    registry = EmbeddedRegistry(root / "registry", free_port()).start()
    registries_conf = root / "registries.conf"
    registries_conf.write_text(
        "unqualified-search-registries = []\n"
        '[[registry]]\nprefix = "mcr.microsoft.com"\nlocation = "mcr.microsoft.com"\n'
        f'[[registry.mirror]]\nlocation = "{registry.address}"\ninsecure = true\n'
        f'[[registry]]\nlocation = "{registry.address}"\ninsecure = true\n'
    )
    podman = Podman(home=root / "podman", registries_conf=registries_conf)
    podman.ensure()
    base = build_base_image(podman, IMAGE_CACHE)
    push_image(podman, base, f"{registry.address}/devcontainers/base:bookworm")
    host = ContainerHost(root, podman, registry)
    host.forget_sample_image()
    yield host
    registry.stop()


@pytest.fixture
def git_repo(work_dir):
    """git_repo({path: text}) -> a local git repository with those files on branch main."""

    def make(files: dict[str, str], name: str = "repo") -> Path:
        dest = work_dir / name
        for rel, text in files.items():
            path = dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        run = {"cwd": dest, "check": True, "capture_output": True}
        subprocess.run(["git", "init", "-q", "-b", "main"], **run)
        subprocess.run(["git", "add", "-A"], **run)
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "init"], **run
        )
        return dest

    return make


@pytest.fixture
def prebuild(container_host, work_dir):
    """prebuild(repo, reporter=None, **job) -> (outcome, reporter, run id); checks that no
    container of the run is left behind, whatever the outcome."""

    def run(repo: Path, reporter: RecordingReporter | None = None, **job):
        run_id = uuid.uuid4().hex[:12]
        reporter = reporter or RecordingReporter()
        workspace = work_dir / "workspaces" / run_id / repo.name
        workspace.parent.mkdir(parents=True)
        outcome = run_prebuild(
            PrebuildJob(
                prebuild_id=run_id,
                repository_url=str(repo),
                branch="main",
                workspace=workspace,
                store=LocalSnapshotStore(work_dir / "unused-store"),
                snapshot_id=run_id,
                uids=UidPool(work_dir / "uids", 61000, 4),
                container=container_host.backend(work_dir / "container-work"),
                **{"limits": SandboxLimits(memory_bytes=2 << 30, max_processes=1024, cpus=2), **job},
            ),
            reporter,
        )
        assert container_host.containers(run_id) == [], "a container outlived its prebuild"
        return outcome, reporter, run_id

    return run
