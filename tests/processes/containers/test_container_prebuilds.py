"""Prebuilds through the container backend: real podman, the reference Dev Containers CLI, a real
registry, images made from Debian packages. Each test is a whole prebuild (a few seconds each)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runner.container_run import export_workspace
from runner.errors import SnapshotError
from runner.executor import PrebuildResult
from runner.images import IMAGE_STAMP
from runner.sandbox import SandboxLimits
from tests.runner_support import RecordingReporter

IMAGE = "mcr.microsoft.com/devcontainers/base:bookworm"


def devcontainer(**body) -> str:
    return json.dumps({"image": IMAGE, **body})


def steps(reporter) -> list[tuple[str, str]]:
    return [(e.step, e.status) for e in reporter.steps if e.status != "running"]


def test_ok_runs_the_prebuild_lifecycle_in_the_image_and_the_snapshot_holds_it(container_host, sample_repo, prebuild):
    container_host.forget_sample_image()
    outcome, reporter, _ = prebuild(sample_repo("ok"))
    assert outcome.result == PrebuildResult.COMPLETED, outcome.failure_message
    assert steps(reporter) == [
        ("clone", "succeeded"),
        ("image", "succeeded"),
        ("container", "succeeded"),
        ("onCreateCommand", "succeeded"),
        ("updateContentCommand", "succeeded"),
        ("snapshot", "succeeded"),
    ]
    pulled = next(e for e in reporter.steps if e.step == "image" and e.status == "succeeded")
    assert pulled.bytes > 10 << 20  # the base image's own size, read from podman
    assert "dependency tree ready: 200 files" in reporter.text("onCreateCommand")
    assert "content updated" in reporter.text("updateContentCommand")
    assert reporter.percents[-1] == 100
    assert reporter.percents == sorted(reporter.percents)  # the bytes written, then pushed: never back
    snapshot = outcome.snapshot
    assert snapshot.image.endswith("@sha256:" + snapshot.sha256)
    listing = container_host.in_snapshot(
        snapshot.image,
        "cd /workspaces/repo-ok && ls deps | wc -l && test -s .prebuilt-at && echo built-at "
        "&& (test -e .post-create-ran && echo post-create-ran || echo no-post-create) && stat -c %u:%g README.md",
    )
    assert listing.split() == ["200", "built-at", "no-post-create", "0:0"]


def test_fail_names_the_command_and_its_status_and_keeps_its_output(sample_repo, prebuild):
    outcome, reporter, _ = prebuild(sample_repo("fail"))
    assert outcome.result == PrebuildResult.FAILED
    assert outcome.failure_message == "onCreateCommand exited with status 3"
    assert "error: dependency resolution failed" in reporter.text("onCreateCommand")
    failed = next(e for e in reporter.steps if e.step == "onCreateCommand" and e.status == "failed")
    assert failed.exit_status == 3
    assert outcome.snapshot is None


def test_slow_is_cancelled_and_leaves_no_container(sample_repo, prebuild):
    reporter = RecordingReporter()
    reporter.cancel_when = lambda line: "tick 2" in line[2]
    outcome, reporter, _ = prebuild(sample_repo("slow"), reporter)
    assert outcome.result == PrebuildResult.CANCELLED
    assert ("onCreateCommand", "stopped") in steps(reporter)


def test_slow_times_out_on_a_short_timeout(sample_repo, prebuild):
    outcome, _, _ = prebuild(sample_repo("slow"), timeout_seconds=8)
    assert outcome.result == PrebuildResult.FAILED
    assert outcome.failure_message == "timed out after 8s"


def test_bare_starts_the_default_image_and_snapshots_the_checkout(container_host, sample_repo, prebuild):
    outcome, _, _ = prebuild(sample_repo("bare"))
    assert outcome.result == PrebuildResult.COMPLETED, outcome.failure_message
    assert "No devcontainer.json found" in outcome.warning_message and IMAGE in outcome.warning_message
    out = container_host.in_snapshot(outcome.snapshot.image, "ls -A /workspaces/repo-bare")
    assert out.split() == [".git", "README.md", "src"]  # the runner's own configuration is gone


def test_the_image_the_user_and_the_environment_are_honoured(container_host, git_repo, prebuild):
    repo = git_repo(
        {
            ".devcontainer/devcontainer.json": devcontainer(
                containerEnv={"GREETING": "hello from containerEnv"},
                remoteUser="vscode",
                onCreateCommand=(
                    f'cat {IMAGE_STAMP} && echo uid=$(id -u) && echo "$GREETING" '
                    "&& echo made $((40+2)) | sudo tee /usr/local/bin/made-by-oncreate && echo mine > owned-by-me"
                ),
            )
        }
    )
    outcome, reporter, _ = prebuild(repo)
    assert outcome.result == PrebuildResult.COMPLETED, outcome.failure_message
    text = reporter.text("onCreateCommand")
    assert "prebuilds devcontainer base image" in text  # a file only the image has
    assert "uid=1000" in text  # remoteUser
    assert "hello from containerEnv" in text
    out = container_host.in_snapshot(
        outcome.snapshot.image,
        "cat /usr/local/bin/made-by-oncreate; stat -c %U /workspaces/repo/owned-by-me",
    )
    # Outside the workspace, what onCreateCommand wrote is in the snapshot; in it, the user's file.
    assert out.split() == ["made", "42", "vscode"]


def test_a_dockerfile_build_and_a_local_feature_are_visible_to_the_lifecycle(container_host, git_repo, prebuild):
    feature = {"id": "greeter", "version": "1.0.0", "options": {"greeting": {"type": "string", "default": "hi"}}}
    repo = git_repo(
        {
            ".devcontainer/Dockerfile": (
                f'FROM {IMAGE} AS base\nARG FLAVOUR=plain\nRUN echo "built $FLAVOUR" > /etc/built-by-dockerfile\n'
                "FROM base AS final\nRUN echo final > /etc/final-stage\n"
            ),
            ".devcontainer/greeter/devcontainer-feature.json": json.dumps(feature),
            ".devcontainer/greeter/install.sh": '#!/bin/sh\necho "$GREETING" > /usr/local/share/greeter\n',
            ".devcontainer/devcontainer.json": json.dumps(
                {
                    "build": {
                        "dockerfile": "Dockerfile",
                        "context": ".",
                        "args": {"FLAVOUR": "spicy"},
                        "target": "base",
                    },
                    "features": {"./greeter": {"greeting": "hola"}},
                    "onCreateCommand": "cat /etc/built-by-dockerfile /usr/local/share/greeter; ls /etc/final-stage",
                }
            ),
        }
    )
    outcome, reporter, _ = prebuild(repo)
    text = reporter.text("onCreateCommand")
    assert "built spicy" in text  # build.args
    assert "hola" in text  # the feature ran with its option
    # build.target: the final stage was not built, so onCreateCommand's ls failed.
    assert outcome.result == PrebuildResult.FAILED and outcome.failure_message == "onCreateCommand exited with status 2"
    assert ("build", "succeeded") in steps(reporter)


def test_a_memory_hog_fails_with_out_of_memory_named(git_repo, prebuild):
    repo = git_repo(
        {".devcontainer/devcontainer.json": devcontainer(onCreateCommand="python3 -c 'x = bytearray(600 << 20)'")}
    )
    limits = SandboxLimits(memory_bytes=256 << 20, max_processes=256, cpus=1, origin="environment class 'tiny'")
    outcome, _, _ = prebuild(repo, limits=limits)
    assert outcome.result == PrebuildResult.FAILED
    assert outcome.failure_message == (
        "onCreateCommand exited with status 137: out of memory (the limit is 256.0 MB (environment class 'tiny'))"
    )


def test_a_fork_bomb_is_contained_and_a_second_prebuild_completes_meanwhile(git_repo, sample_repo, prebuild):
    # Every process forks for ever, and retries when the fork fails (a shell's bomb gives up there).
    forever = "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)"
    bomb = git_repo(
        {"bomb.py": forever, ".devcontainer/devcontainer.json": devcontainer(onCreateCommand="python3 bomb.py")}
    )
    limits = SandboxLimits(memory_bytes=1 << 30, max_processes=64, cpus=1, origin="environment class 'tiny'")
    with ThreadPoolExecutor(2) as pool:
        bombed = pool.submit(prebuild, bomb, limits=limits, timeout_seconds=300)
        ok = pool.submit(prebuild, sample_repo("ok"))
        ok_outcome = ok.result()[0]
        bomb_outcome = bombed.result()[0]
    assert ok_outcome.result == PrebuildResult.COMPLETED, ok_outcome.failure_message
    # The bomb is held at the limit; the CLI's own shell in the container cannot fork either, and
    # the command fails (or, when it happens to hold on, the runner stops it as a fork bomb).
    assert bomb_outcome.result == PrebuildResult.FAILED
    assert "process limit of 64 (environment class 'tiny')" in bomb_outcome.failure_message


def content_digest(root: Path) -> dict[str, tuple]:
    """Every path under root but .git: kind, mode and content (mtimes differ between two builds)."""
    result = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel == ".git" or rel.startswith(".git/") or rel == ".prebuilt-at":
            continue
        st = path.lstat()
        if path.is_symlink():
            result[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            result[rel] = ("dir", stat.S_IMODE(st.st_mode))
        else:
            result[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(path.read_bytes()).hexdigest())
    return result


def test_a_restore_onto_a_runner_without_the_image_pulls_it_and_the_workspace_is_the_prebuilds(
    container_host, sample_repo, prebuild, work_dir
):
    repo = sample_repo("ok")
    outcome, _, run_id = prebuild(repo)
    assert outcome.result == PrebuildResult.COMPLETED, outcome.failure_message
    backend = container_host.backend(work_dir / "container-work")
    image = outcome.snapshot.image
    container_host.podman.run("rmi", "-f", image)  # the runner's local storage no longer has it
    restored = export_workspace(backend, image, work_dir / "restored")
    assert container_host.podman.run("image", "exists", image, check=False).returncode == 0  # pulled
    expected = work_dir / "expected"
    subprocess.run(["git", "clone", "-q", "-b", "main", str(repo), str(expected)], check=True, umask=0o022)
    build = ["python3", "tools/build_tree.py", "200", "1024", "1"]
    subprocess.run(build, cwd=expected, check=True, capture_output=True, umask=0o022)
    assert content_digest(restored) == content_digest(expected)
    assert (restored / ".prebuilt-at").exists()  # updateContentCommand's file, made only in the container


def test_a_snapshot_pinned_by_a_digest_the_registry_does_not_hold_is_refused(container_host, work_dir):
    backend = container_host.backend(work_dir / "container-work")
    forged = backend.registry.pinned("sha256:" + "0" * 64)
    with pytest.raises(SnapshotError, match="cannot pull the snapshot"):
        export_workspace(backend, forged, work_dir / "restored")


def test_chatty_keeps_200000_lines_in_order(sample_repo, prebuild):
    outcome, reporter, _ = prebuild(sample_repo("chatty"))
    assert outcome.result == PrebuildResult.COMPLETED, outcome.failure_message
    numbers = [int(text.split()[2]) for step, _, text in reporter.lines if text.startswith("log line ")]
    assert numbers == list(range(200000))
    assert {step for step, _, text in reporter.lines if text.startswith("log line ")} == {"onCreateCommand"}
