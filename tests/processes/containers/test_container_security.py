"""A repository's devcontainer.json and commands are hostile input on a shared runner: what the
container backend refuses, what it drops with a warning that names it, and what a command inside
the container can reach of the runner host."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from runner.executor import PrebuildResult
from runner.sandbox import SandboxLimits
from tests.processes.security.test_sandbox_network import METADATA, PROBE, saw_connection

IMAGE = "mcr.microsoft.com/devcontainers/base:bookworm"
FULL_CAPABILITIES = "000001ffffffffff"


@pytest.fixture
def host_marker():
    path = Path("/tmp") / f"initialize-ran-{uuid.uuid4().hex}"
    yield path
    path.unlink(missing_ok=True)


def test_a_hostile_devcontainer_json_changes_nothing_on_the_host_and_each_refused_key_is_named(
    git_repo, prebuild, host_marker
):
    repo = git_repo(
        {
            ".devcontainer/devcontainer.json": json.dumps(
                {
                    "image": IMAGE,
                    "initializeCommand": f"touch {host_marker}",
                    "privileged": True,
                    "capAdd": ["SYS_ADMIN"],
                    "securityOpt": ["seccomp=unconfined"],
                    "runArgs": ["--network=host", "--pid=host", "-v", "/:/host", "--device", "/dev/kmsg", "-l", "ok=1"],
                    "mounts": ["source=/,target=/hostroot,type=bind", "source=cache,target=/cache,type=volume"],
                    "dockerComposeFile": "compose.yml",
                    "onCreateCommand": (
                        "ls /host /hostroot 2>&1; grep CapEff /proc/self/status; "
                        "test -d /cache && echo volume mounted; ls /proc | grep -c '^[0-9]'"
                    ),
                }
            ),
            ".devcontainer/compose.yml": "services:\n  app:\n    image: x\n    privileged: true\n",
        }
    )
    outcome, reporter, _ = prebuild(repo)
    assert outcome.result == PrebuildResult.COMPLETED, outcome.failure_message
    warning = outcome.warning_message
    for named in (
        "initializeCommand",
        "privileged",
        "capAdd",
        "securityOpt",
        "runArgs --network=host",
        "runArgs --pid=host",
        "runArgs -v /:/host",
        "runArgs --device /dev/kmsg",
        "mounts source=/,target=/hostroot,type=bind",
        "dockerComposeFile",
    ):
        assert named in warning, named
    assert "-l ok=1" not in warning and "source=cache" not in warning  # what is harmless stays
    assert not host_marker.exists(), "initializeCommand ran on the runner host"
    text = reporter.text("onCreateCommand")
    assert "cannot access '/host': No such file" in text and "cannot access '/hostroot': No such file" in text
    assert "volume mounted" in text  # a named volume (in the run's own namespace) is fine
    assert FULL_CAPABILITIES not in text
    # Its own PID namespace: a handful of processes, not the host's.
    assert int(text.strip().splitlines()[-1]) < 20


def test_a_feature_asking_for_privileges_is_refused_where_podman_is_called(git_repo, prebuild):
    # A feature's metadata is merged by the CLI itself: vet_config never sees it; the guard does.
    feature = {"id": "evil", "version": "1.0.0", "privileged": True}
    repo = git_repo(
        {
            ".devcontainer/evil/devcontainer-feature.json": json.dumps(feature),
            ".devcontainer/evil/install.sh": "#!/bin/sh\ntrue\n",
            ".devcontainer/devcontainer.json": json.dumps(
                {"image": IMAGE, "features": {"./evil": {}}, "onCreateCommand": "echo should not run"}
            ),
        }
    )
    outcome, _, _ = prebuild(repo)
    assert outcome.result == PrebuildResult.FAILED
    assert outcome.failure_message.startswith("refused by the runner's container policy: podman run: --privileged")


def test_escape_reads_nothing_of_the_runner_host(sample_repo, prebuild, work_dir, monkeypatch):
    secret = work_dir / "runner-secret"
    token = uuid.uuid4().hex
    secret.write_text(f"SECRET {token}\n")
    # In the runner's own environment: the CLI's is clean, so ${localEnv:...} and the sample's
    # PROBE_SECRET_FILE find nothing.
    monkeypatch.setenv("PROBE_SECRET_FILE", str(secret))
    sibling = work_dir / "workspaces" / f"other-tenant-{uuid.uuid4().hex[:8]}"
    sibling.mkdir(parents=True)
    outcome, reporter, _ = prebuild(sample_repo("escape"))
    assert outcome.result == PrebuildResult.COMPLETED, outcome.failure_message
    text = reporter.text("onCreateCommand")
    assert token not in text
    assert sibling.name not in text  # the workspace's parent is the container's /workspaces
    assert "PARENT" in text  # the probe did run


def test_local_env_substitution_cannot_read_the_runner_environment(git_repo, prebuild, monkeypatch):
    token = uuid.uuid4().hex
    monkeypatch.setenv("RUNNER_ONLY_SECRET", token)
    repo = git_repo(
        {
            ".devcontainer/devcontainer.json": json.dumps(
                {
                    "image": IMAGE,
                    "containerEnv": {"LEAK": "${localEnv:RUNNER_ONLY_SECRET}"},
                    "onCreateCommand": 'echo "leak=[$LEAK]"',
                }
            )
        }
    )
    outcome, reporter, _ = prebuild(repo)
    assert outcome.result == PrebuildResult.COMPLETED, outcome.failure_message
    assert "leak=[]" in reporter.text("onCreateCommand")
    assert token not in reporter.text()


def probe_report(git_repo, prebuild, targets, *, allow_network: bool) -> dict:
    request = json.dumps({"targets": targets, "guarded": METADATA})
    repo = git_repo(
        {
            "tools/probe.py": PROBE,
            ".devcontainer/devcontainer.json": json.dumps(
                {"image": IMAGE, "onCreateCommand": ["python3", "tools/probe.py", request]}
            ),
        }
    )
    limits = SandboxLimits(memory_bytes=2 << 30, max_processes=1024, cpus=2, allow_network=allow_network)
    outcome, reporter, _ = prebuild(repo, limits=limits)
    assert outcome.result == PrebuildResult.COMPLETED, outcome.failure_message
    lines = reporter.text("onCreateCommand").splitlines()
    [report] = [line.removeprefix("PROBE ") for line in lines if line.startswith("PROBE ")]
    return json.loads(report)


def test_a_networked_container_reaches_no_service_of_the_runner_host(git_repo, prebuild, listeners):
    targets = [target for _, addresses in listeners.values() for target in addresses]
    report = probe_report(git_repo, prebuild, targets, allow_network=True)
    attempts = report["attempts"]
    assert [target for target, outcome in attempts.items() if not outcome.startswith("failed")] == []
    assert [name for name, (server, _) in listeners.items() if saw_connection(server)] == []
    # Still a network to the outside (never tried: this host has no internet): an interface, a route.
    assert [name for name in report["interfaces"] if name != "lo"] != []
    assert report["default_route"] is True


def test_a_container_without_network_has_only_its_own_loopback(git_repo, prebuild, listeners):
    server, addresses = listeners["wildcard"]
    report = probe_report(git_repo, prebuild, addresses, allow_network=False)
    assert report["interfaces"] == ["lo"]
    assert report["default_route"] is False
    assert not saw_connection(server)


def test_a_workspace_bent_to_the_host_gets_no_file_written_there(git_repo, prebuild, work_dir):
    # The runner puts the repository's devcontainer.json back after the container ran; the
    # commands made its folder a link to a folder of the host meanwhile.
    host_folder = work_dir / f"host-folder-{uuid.uuid4().hex[:8]}"
    host_folder.mkdir()
    repo = git_repo(
        {
            ".devcontainer/devcontainer.json": json.dumps(
                {"image": IMAGE, "onCreateCommand": f"rm -rf .devcontainer && ln -s {host_folder} .devcontainer"}
            )
        }
    )
    outcome, _, _ = prebuild(repo)
    assert outcome.result == PrebuildResult.COMPLETED, outcome.failure_message
    assert list(host_folder.iterdir()) == []
