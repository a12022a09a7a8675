"""What the isolation costs: starting a sandboxed command, and watching a workspace's disk use.

Usage: .venv/bin/python bench/bench_sandbox.py [--repeat R] [--files N]   (as root, with bwrap)

1. Start-up. `true` run R times through run_sandboxed: in a sandbox without network (its own empty
   network namespace), and with network (slirp4netns attached and the filtering routes added
   before the command may start). The baseline, in the same script, is `true` started as a plain
   child process. Ratios are sandbox time / baseline time (lower is better); the figure that
   matters is the absolute cost per lifecycle command, in milliseconds.
2. Disk watcher. runner.lifecycle.disk_usage() over a tree of N small files (the size of the
   heavy sample), against `du -s --block-size=1` of the same tree, both warm: the watcher runs it
   every 2 s (or 20x its own duration) while commands run, so its cost per scan bounds its share.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner._fs import cleanup_tree  # noqa: E402
from runner.lifecycle import disk_usage  # noqa: E402
from runner.sandbox import SandboxLimits, find_bwrap, run_sandboxed  # noqa: E402
from runner.uids import UidPool  # noqa: E402


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def ms(values: list[float]) -> str:
    p90 = sorted(values)[int(len(values) * 0.9)]
    return f"median {statistics.median(values) * 1000:7.1f} ms, p90 {p90 * 1000:7.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--files", type=int, default=20000)
    args = parser.parse_args()
    if find_bwrap() is None:
        print("bwrap is not installed: nothing to measure")
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o711)
        workspace = root / "ws"
        workspace.mkdir()
        pool = UidPool(lock_dir=root / "uids")
        with pool.lease() as uid:

            def sandboxed(network: bool):
                def run():
                    result = run_sandboxed(
                        ["true"], workspace=workspace, limits=SandboxLimits(allow_network=network), uid=uid
                    )
                    assert result.exit_status == 0, result

                return run

            plain = timed(lambda: subprocess.run(["true"], check=True), args.repeat)
            offline = timed(sandboxed(False), args.repeat)
            online = timed(sandboxed(True), args.repeat)
        base = statistics.median(plain)
        print(f"start `true` x{args.repeat}")
        print(f"  plain child process (baseline)  {ms(plain)}")
        print(f"  sandbox, no network             {ms(offline)}  ratio {statistics.median(offline) / base:6.1f}")
        print(f"  sandbox, network (slirp4netns)  {ms(online)}  ratio {statistics.median(online) / base:6.1f}")
        setup = statistics.median(online) - statistics.median(offline)
        print(f"  network set-up per command      {setup * 1000:7.1f} ms")

        tree = root / "tree"
        for i in range(args.files):
            folder = tree / f"pkg{i % 200:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"mod{i:05d}.txt").write_bytes(b"x" * 300)
        du_argv = ["du", "-s", "--block-size=1", str(tree)]
        du = timed(lambda: subprocess.run(du_argv, check=True, capture_output=True), 5)
        ours = timed(lambda: disk_usage(tree), 5)
        print(f"disk use of {args.files} files (warm, best of 5)")
        print(f"  du -s (baseline)                {min(du) * 1000:7.1f} ms")
        print(f"  disk_usage (the watcher's scan) {min(ours) * 1000:7.1f} ms  ratio {min(ours) / min(du):5.2f}")
        print(f"  share of a 2 s watch interval   {min(ours) / 2 * 100:7.1f} %")
        cleanup_tree(tree)
    return 0


if __name__ == "__main__":
    sys.exit(main())
