"""Benchmark snapshot create/restore against `tar | zstd -3` on the heavy sample repository.

Usage: .venv/bin/python bench/bench_snapshot.py [--files N] [--repeat R]

Makes the `heavy` sample in a temporary directory, runs a cold prebuild with run_prebuild
(clone + lifecycle + snapshot), then times create_snapshot / restore_snapshot and the
shell baselines on the same workspace tree. Each measurement is repeated (alternating
ours and the baseline) after a sync, and the best time is kept: the disk's write-back
makes single runs noisy. Throughput is the tree's file bytes per second; a ratio of 1.0
means as fast as the baseline (target >= 0.8).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner._fs import cleanup_tree  # noqa: E402
from runner.executor import NullReporter, PrebuildJob, PrebuildResult, run_prebuild  # noqa: E402
from runner.snapshot import create_snapshot, restore_snapshot  # noqa: E402
from runner.store import LocalSnapshotStore  # noqa: E402

MAKE_SAMPLE_REPO = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "make_sample_repo.py"


class StepTimer(NullReporter):
    def __init__(self):
        self.durations: dict[str, float] = {}

    def step(self, event):
        if event.ended_at is not None:
            self.durations[event.step] = (event.ended_at - event.started_at).total_seconds()


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: a figure that, unlike wall time,
    does not depend on what else the machine is running."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def measure(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of fn(), after flushing earlier writes to disk."""
    os.sync()
    wall, cpu = time.perf_counter(), cpu_seconds()
    fn()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def shell(command: str) -> None:
    subprocess.run(command, shell=True, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, help="files in the dependency tree (default 20000)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench-snapshot-", dir="/tmp"))
    base.chmod(0o711)  # the sandbox user must be able to reach the workspace
    try:
        repo = base / "repo"
        make = [sys.executable, str(MAKE_SAMPLE_REPO), "heavy", str(repo)]
        if args.files:
            make += ["--files", str(args.files)]
        subprocess.run(make, check=True, capture_output=True)

        store = LocalSnapshotStore(base / "store")
        workspace = base / "ws"
        timer = StepTimer()
        job = PrebuildJob(
            prebuild_id="bench",
            repository_url=str(repo),
            branch="main",
            workspace=workspace,
            store=store,
            snapshot_id="cold",
            timeout_seconds=3600,
        )
        start = time.perf_counter()
        outcome = run_prebuild(job, timer)
        total = time.perf_counter() - start
        if outcome.result != PrebuildResult.COMPLETED:
            raise SystemExit(f"prebuild {outcome.result}: {outcome.failure_message}")
        info = outcome.snapshot
        print(
            f"tree: {info.file_count} files, {info.source_bytes / 1e6:.1f} MB; snapshot {info.size_bytes / 1e6:.1f} MB"
        )
        print(
            f"cold prebuild: {total:.2f} s total; "
            + ", ".join(f"{step} {seconds:.2f} s" for step, seconds in timer.durations.items())
        )

        archive = base / "baseline.tar.zst"
        ours_dest, base_dest = base / "restored-ours", base / "restored-baseline"
        # The store fsyncs a snapshot before committing it; the baseline does not sync, so the
        # like-for-like figure is "ours create (no fsync)"; both are shown.
        unsynced = LocalSnapshotStore(base / "store-nofsync", fsync=False)
        results: dict[str, list[tuple[float, float]]] = {
            "ours create": [],
            "ours create (no fsync)": [],
            "baseline create": [],
            "ours restore": [],
            "baseline restore": [],
        }
        infos = {}
        for i in range(args.repeat):
            snap = f"bench-{i}"
            results["ours create"].append(
                measure(lambda snap=snap: infos.__setitem__(snap, create_snapshot(workspace, store, snap)))
            )
            results["ours create (no fsync)"].append(
                measure(lambda snap=snap: create_snapshot(workspace, unsynced, snap))
            )
            unsynced.delete(snap)
            results["baseline create"].append(
                measure(lambda: shell(f"tar -c -C '{workspace}' . | zstd -3 -T0 -q > '{archive}'"))
            )
            results["ours restore"].append(
                measure(lambda snap=snap: restore_snapshot(store, snap, ours_dest, expected_sha256=infos[snap].sha256))
            )
            base_dest.mkdir()
            results["baseline restore"].append(
                measure(lambda: shell(f"zstd -d -c -q '{archive}' | tar -x -C '{base_dest}'"))
            )
            for path in (ours_dest, base_dest):
                cleanup_tree(path)
            store.delete(snap)

        mb = info.source_bytes / 1e6
        print(f"\n{'operation':<24}{'best wall s':>12}{'all runs (s)':>20}{'MB/s':>7}{'best CPU s':>12}")
        for name, runs in results.items():
            walls = [wall for wall, _ in runs]
            all_runs = " ".join(f"{w:.2f}" for w in walls)
            best_cpu = min(cpu for _, cpu in runs)
            print(f"{name:<24}{min(walls):>12.2f}{all_runs:>20}{mb / min(walls):>7.0f}{best_cpu:>12.2f}")

        def best(name: str, index: int = 0) -> float:
            return min(run[index] for run in results[name])

        create_ratio = best("baseline create") / best("ours create")
        unsynced_ratio = best("baseline create") / best("ours create (no fsync)")
        restore_ratio = best("baseline restore") / best("ours restore")
        print(f"\ncreate throughput ratio (ours / tar|zstd):   {create_ratio:.2f}  (target >= 0.8)")
        print(f"  without the store's fsync:                 {unsynced_ratio:.2f}")
        print(f"restore throughput ratio (ours / zstd|tar):  {restore_ratio:.2f}  (target >= 0.8)")
        cpu_create = best("baseline create", 1) / best("ours create", 1)
        cpu_restore = best("baseline restore", 1) / best("ours restore", 1)
        print(f"CPU cost ratio, create (baseline / ours):    {cpu_create:.2f}")
        print(f"CPU cost ratio, restore (baseline / ours):   {cpu_restore:.2f}")
    finally:
        cleanup_tree(base)


if __name__ == "__main__":
    main()
