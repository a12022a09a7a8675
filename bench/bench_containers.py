"""Benchmark the container backend on the heavy sample, each figure against a baseline run in the
same script, on the same repository, image and registry:

1. prebuild wall time: ours (clone, devcontainer up --prebuild through the guard, snapshot layer
   written and pushed) against a bare `devcontainer up --prebuild --docker-path podman` of the same
   checkout (target: at most 1.15 times; ours also makes and pushes the snapshot, which the bare CLI
   does not, so the ratio without the snapshot step is printed too);
2. snapshot creation (layer written and pushed) against `tar -c | zstd -3 -T0` of the same tree
   (target: at least 0.8 of its throughput);
3. the first pull of the snapshot onto a runner that has neither it nor its base image, against
   `skopeo copy` of the same image from the same registry into the same storage (target: >= 0.8);
4. a restore into a running container with the workspace ready, the snapshot on the runner:
   p50 and p95 over 20 (target: p95 <= 0.5 s), and the disk each extra instance uses beyond the
   shared layers (target: <= 5 MB).

Needs podman, skopeo, docker-registry, mmdebstrap and the Dev Containers CLI (make install), as root.
Usage: .venv/bin/python bench/bench_containers.py [--files N] [--restores N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner._fs import cleanup_tree  # noqa: E402
from runner.container_run import ContainerBackend  # noqa: E402
from runner.executor import NullReporter, PrebuildJob, PrebuildResult, run_prebuild  # noqa: E402
from runner.images import EmbeddedRegistry, build_base_image, free_port, push_image  # noqa: E402
from runner.oci import Layout, Registry  # noqa: E402
from runner.podman import Podman, host_problem, userns_options  # noqa: E402
from runner.sandbox import SandboxLimits  # noqa: E402
from runner.store import LocalSnapshotStore  # noqa: E402
from runner.uids import UidPool  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "node_modules" / ".bin" / "devcontainer"
MAKE_SAMPLE_REPO = next(
    (
        p / "shared/fixtures/make_sample_repo.py"
        for p in ROOT.parents
        if (p / "shared/fixtures/make_sample_repo.py").exists()
    ),
    ROOT.parent / "shared/fixtures/make_sample_repo.py",
)
IMAGE = "mcr.microsoft.com/devcontainers/base:bookworm"
IMAGE_CACHE = Path(os.environ.get("PREBUILDS_IMAGE_CACHE", "/var/tmp/prebuilds-images"))


class StepTimer(NullReporter):
    def __init__(self):
        self.durations: dict[str, float] = {}

    def step(self, event):
        if event.ended_at is not None:
            self.durations[event.step] = (event.ended_at - event.started_at).total_seconds()


def run(command: list[str], env: dict, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, check=True, capture_output=True, text=True, **kwargs)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                total += os.lstat(path).st_size
    return total


def disk_usage(path: str) -> int:
    # -x: a running container's rootfs ("merged") is a mount of its layers, not disk of its own;
    # counting it made each instance look like a full copy of the image.
    out = subprocess.run(["du", "-sbx", path], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--restores", type=int, default=20)
    args = parser.parse_args()
    problem = host_problem(CLI)
    if problem:
        print(f"skipped: the container backend cannot run here ({problem})")
        return
    base_dir = Path(tempfile.mkdtemp(prefix="bench-containers-", dir="/var/tmp"))
    registry = EmbeddedRegistry(base_dir / "registry", free_port()).start()
    try:
        registries = base_dir / "registries.conf"
        registries.write_text(
            'unqualified-search-registries = []\n[[registry]]\nprefix = "mcr.microsoft.com"\n'
            f'location = "mcr.microsoft.com"\n[[registry.mirror]]\nlocation = "{registry.address}"\ninsecure = true\n'
            f'[[registry]]\nlocation = "{registry.address}"\ninsecure = true\n'
        )
        podman = Podman(home=base_dir / "podman", registries_conf=registries)
        podman.ensure()
        env = {**podman.env(), "TMPDIR": str(base_dir)}
        push_image(podman, build_base_image(podman, IMAGE_CACHE), f"{registry.address}/devcontainers/base:bookworm")
        podman.run("pull", "--quiet", IMAGE)
        repo = base_dir / "heavy"
        subprocess.run(
            [sys.executable, str(MAKE_SAMPLE_REPO), "heavy", str(repo), "--files", str(args.files)], check=True
        )
        backend = ContainerBackend(
            podman=podman,
            cli=CLI,
            registry=Registry(registry.address, repository="prebuilds/bench"),
            layout=Layout(base_dir / "layout"),
            work_dir=base_dir / "work",
        )
        (base_dir / "work").mkdir()
        limits = SandboxLimits(memory_bytes=8 << 30, max_processes=4096, cpus=os.cpu_count())

        # 1. A warm-up prebuild (the base image into the runner's layout cache), then ours against
        # the bare CLI, alternating.
        def ours(tag: str):
            timer = StepTimer()
            workspace = base_dir / "ws" / tag / "heavy"
            workspace.parent.mkdir(parents=True)
            started = time.perf_counter()
            outcome = run_prebuild(
                PrebuildJob(
                    prebuild_id=tag,
                    repository_url=str(repo),
                    branch="main",
                    workspace=workspace,
                    store=LocalSnapshotStore(base_dir / "unused"),
                    snapshot_id=tag,
                    limits=limits,
                    uids=UidPool(base_dir / "uids", 61000, 4),
                    container=backend,
                ),
                timer,
            )
            wall = time.perf_counter() - started
            assert outcome.result == PrebuildResult.COMPLETED, outcome.failure_message
            cleanup_tree(workspace.parent)
            return wall, timer.durations, outcome.snapshot

        def bare(tag: str) -> tuple[float, Path]:
            workspace = base_dir / "bare" / tag / "heavy"
            workspace.parent.mkdir(parents=True)
            started = time.perf_counter()
            run(["git", "clone", "-q", "-b", "main", f"file://{repo}", str(workspace)], env)
            run(
                [
                    str(CLI),
                    "up",
                    "--workspace-folder",
                    str(workspace),
                    "--prebuild",
                    "--docker-path",
                    "podman",
                    "--id-label",
                    f"bench={tag}",
                    "--remove-existing-container",
                ],
                env,
            )
            wall = time.perf_counter() - started
            ids = run(["podman", "ps", "-aq", "--filter", f"label=bench={tag}"], env).stdout.split()
            run(["podman", "rm", "-f", "-t", "0", *ids], env)
            return wall, workspace

        ours("warmup")
        walls_ours, walls_bare, snapshot_s, runs = [], [], [], []
        built_tree = None
        for i in range(2):
            wall, durations, snapshot = ours(f"ours{i}-{uuid.uuid4().hex[:6]}")
            walls_ours.append(wall)
            snapshot_s.append(durations["snapshot"])
            runs.append(snapshot)
            wall, tree = bare(f"bare{i}")
            walls_bare.append(wall)
            built_tree = tree
        ours_best, bare_best = min(walls_ours), min(walls_bare)
        without_snapshot = min(w - s for w, s in zip(walls_ours, snapshot_s, strict=True))
        print(f"heavy ({args.files} files) prebuild, best of 2:")
        print(
            f"  ours: {ours_best:.2f} s (snapshot step {min(snapshot_s):.2f} s); "
            f"bare devcontainer up: {bare_best:.2f} s"
        )
        print(f"  ratio ours / bare: {ours_best / bare_best:.2f}  (target <= 1.15)")
        print(f"  ratio without the snapshot step: {without_snapshot / bare_best:.2f}")

        # 2. Snapshot creation against tar | zstd -3 -T0 of the same tree.
        size = tree_bytes(built_tree)
        baseline = min(
            timed(
                lambda: subprocess.run(
                    f"tar -C {built_tree} -cf - . | zstd -3 -T0 -q -o {base_dir}/b.tar.zst -f", shell=True, check=True
                )
            )
            for _ in range(2)
        )
        ours_snapshot = min(snapshot_s)
        print(
            f"snapshot of {size / 1e6:.0f} MB: ours {ours_snapshot:.2f} s ({size / ours_snapshot / 1e6:.0f} MB/s), "
            f"tar|zstd -3 -T0 {baseline:.2f} s ({size / baseline / 1e6:.0f} MB/s)"
        )
        print(f"  throughput ratio ours / tar|zstd: {baseline / ours_snapshot:.2f}  (target >= 0.8)")

        # 3. First pull onto a runner without the snapshot or its base, against skopeo copy.
        image = runs[-1].image

        def forget():
            subprocess.run(
                ["podman", "rmi", "-f", image, IMAGE, "localhost/bench-copy:1"], env=env, capture_output=True
            )

        pulls, copies = [], []
        for _ in range(2):
            forget()
            pulls.append(timed(lambda: run(["podman", "pull", "-q", "--tls-verify=false", image], env)))
            forget()
            copies.append(
                timed(
                    lambda: run(
                        [
                            "skopeo",
                            "copy",
                            "-q",
                            "--src-tls-verify=false",
                            f"docker://{image}",
                            "containers-storage:localhost/bench-copy:1",
                        ],
                        env,
                    )
                )
            )
        print(
            f"first pull: ours (podman pull) {min(pulls):.2f} s, skopeo copy {min(copies):.2f} s; "
            f"ratio {min(copies) / min(pulls):.2f}  (target >= 0.8)"
        )

        # 5 (printed last). Cancelling a running prebuild: from the request to the outcome, no container left.
        slow = base_dir / "slow"
        subprocess.run([sys.executable, str(MAKE_SAMPLE_REPO), "slow", str(slow)], check=True, capture_output=True)

        class Canceller(NullReporter):
            requested: float | None = None

            def logs(self, lines):
                if self.requested is None and any("tick 2" in text for _, _, text in lines):
                    self.requested = time.perf_counter()

            def should_stop(self):
                return "cancelled" if self.requested is not None else None

        cancels = []
        for i in range(3):
            reporter = Canceller()
            workspace = base_dir / "ws" / f"slow{i}" / "slow"
            workspace.parent.mkdir(parents=True)
            job = PrebuildJob(
                prebuild_id=f"slow{i}-{uuid.uuid4().hex[:6]}",
                repository_url=str(slow),
                branch="main",
                workspace=workspace,
                store=LocalSnapshotStore(base_dir / "unused"),
                snapshot_id=f"slow{i}",
                limits=limits,
                uids=UidPool(base_dir / "uids", 61000, 4),
                container=backend,
            )
            outcome = run_prebuild(job, reporter)
            cancels.append(time.perf_counter() - reporter.requested)
            assert outcome.result == PrebuildResult.CANCELLED, outcome
            left = run(["podman", "ps", "-aq", "--filter", f"label=dev.prebuilds.run={job.prebuild_id}"], env).stdout
            assert not left.split(), "a container outlived its cancelled prebuild"

        # 4. Restores into running containers, the snapshot on the runner.
        run(["podman", "pull", "-q", "--tls-verify=false", image], env)
        storage = run(["podman", "info", "--format", "{{.Store.GraphRoot}}"], env).stdout.strip()
        before = disk_usage(storage)
        latencies, names = [], []
        for i in range(args.restores):
            name = f"bench-restore-{i}"
            names.append(name)
            started = time.perf_counter()
            run(
                ["podman", "run", "-d", "--name", name, *userns_options(), "--network=none", image, "sleep", "600"], env
            )
            run(["podman", "exec", name, "sh", "-c", "test -d /workspaces/heavy/deps"], env)
            latencies.append(time.perf_counter() - started)
        after = disk_usage(storage)
        p50 = statistics.median(latencies)
        p95 = sorted(latencies)[max(0, int(len(latencies) * 0.95) - 1)]
        print(
            f"restore into a running container, {args.restores} runs: p50 {p50:.2f} s, p95 {p95:.2f} s "
            "(target p95 <= 0.5 s)"
        )
        print(f"  disk per extra instance: {(after - before) / args.restores / 1e6:.1f} MB  (target <= 5 MB)")
        subprocess.run(["podman", "rm", "-f", "-t", "0", *names], env=env, capture_output=True)
        print(
            f"cancel of a running prebuild to its outcome, no container left: worst of 3 {max(cancels):.2f} s "
            "(target: within 2 s)"
        )
    finally:
        registry.stop()
        cleanup_tree(base_dir)


if __name__ == "__main__":
    main()
