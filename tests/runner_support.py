"""Test helpers for runs of the runner (tests/processes/runner and tests/processes/containers)."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path

from runner.errors import StopReason


class RecordingReporter:
    """Reporter that records everything; cancel() makes should_stop() return 'cancelled'."""

    def __init__(self):
        self.phases: list[str] = []
        self.lines: list[tuple[str, str, str]] = []
        self.steps = []
        self.percents: list[int] = []
        self.heartbeats = 0
        self.cancel_requested_at: float | None = None
        self.cancel_when = None  # callable(line) -> bool, checked on every line

    def phase(self, name):
        self.phases.append(name)

    def logs(self, lines):
        self.lines.extend(lines)
        waiting = self.cancel_when is not None and self.cancel_requested_at is None
        if waiting and any(self.cancel_when(line) for line in lines):
            self.cancel()

    def step(self, event):
        self.steps.append(event)

    def progress(self, percent):
        self.percents.append(percent)

    def should_stop(self):
        return StopReason.CANCELLED if self.cancel_requested_at is not None else None

    def heartbeat(self):
        self.heartbeats += 1

    def cancel(self):
        self.cancel_requested_at = time.monotonic()

    def text(self, step: str | None = None, stream: str | None = None) -> str:
        return "\n".join(
            t for s, st, t in self.lines if (step is None or s == step) and (stream is None or st == stream)
        )


def processes_matching(*markers: str) -> list[str]:
    """Live processes whose command line or mount table mentions a marker.

    Pass the workspace path: bwrap has it on its command line, and every process inside the
    sandbox has it in /proc/PID/mountinfo (the source of the /workspace bind), whatever it
    runs. Scanning for the sandbox uid instead would catch other runs on a shared machine.
    """
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if "State:\tZ" in Path(entry.path, "status").read_text():
                continue  # a zombie runs nothing; this VM's init is slow to reap
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            mounts = Path(entry.path, "mountinfo").read_text(errors="replace")
        except OSError:
            continue  # exited meanwhile, or not ours to read
        if any(marker in cmdline or marker in mounts for marker in markers):
            found.append(f"{entry.name}: {cmdline}")
    return found


def tree_manifest(root: Path) -> dict[str, tuple]:
    """Every path under root with its type, mode, mtime and content hash or link target."""
    manifest = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = path.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                manifest[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                manifest[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                manifest[rel] = ("file", stat.S_IMODE(st.st_mode), int(st.st_mtime), digest)
    return manifest
