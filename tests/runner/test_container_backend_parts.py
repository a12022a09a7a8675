"""The container backend's parts that need no engine and start no process: the guard's rewriting
of podman argument vectors, and the CLI event stream turned into steps and lines. (The snapshot
layer writer runs GNU tar: tests/processes/runner/test_runner_oci_layer.py.)"""

from __future__ import annotations

import json

import pytest

from runner import podman_guard
from runner.container_run import _Events
from runner.errors import ArgumentRefused
from runner.oci import tool_message
from runner.podman import GUARD_POLICY_ENV, GuardPolicy, write_guard

WS = "/srv/runs/abc/repo"


@pytest.fixture
def policy(tmp_path, monkeypatch):
    policy = GuardPolicy(
        podman="/usr/bin/podman",
        workspace=WS,
        run_id="run1",
        organization="org1",
        network="none",
        memory_bytes=1 << 30,
        cpus=2,
        pids_limit=256,
    )
    shim = write_guard(tmp_path / "guard", policy)
    monkeypatch.setenv(GUARD_POLICY_ENV, str(shim.parent / "policy.json"))
    return policy


CLI_RUN = [
    "run",
    "--sig-proxy=false",
    "-a",
    "STDOUT",
    "--mount",
    f"type=bind,source={WS},target=/workspaces/repo",
    "--mount",
    "type=volume,src=cache,dst=/cache",
    "--userns=keep-id",
    "-l",
    "devcontainer.local_folder=x",
    "--entrypoint",
    "/bin/sh",
    "img:1",
    "-c",
    "echo started",
]


def test_run_gets_the_runners_options_and_loses_keep_id(policy):
    args = podman_guard.rewrite(policy, CLI_RUN)
    assert args[:9] == [
        "run",
        "--userns=auto",
        "--network=none",
        f"--memory={1 << 30}",
        f"--memory-swap={1 << 30}",
        "--cpus=2",
        "--pids-limit=256",
        "--label=dev.prebuilds.run=run1",
        "--label=dev.prebuilds.organization=org1",
    ]
    assert "--userns=keep-id" not in args
    # The checkout is chowned into the container's range; a named volume is the run's own.
    assert f"type=bind,source={WS},target=/workspaces/repo,U=true" in args
    assert "type=volume,source=prebuild-run1-cache,target=/cache" in args
    assert args[-3:] == ["img:1", "-c", "echo started"]  # the image and its command, untouched


@pytest.mark.parametrize(
    "extra",
    [
        ["--privileged"],
        ["--network=host"],
        ["-v", "/:/host"],
        ["--mount", "type=bind,source=/etc,target=/x"],
        ["--cap-add", "SYS_ADMIN"],
        ["--security-opt", "seccomp=unconfined"],
        ["--userns=host"],
        ["--mount", "type=volume,source=x,target=/y,volume-opt=device=/"],
    ],
)
def test_widening_options_are_refused_whoever_adds_them(policy, extra):
    with pytest.raises(ArgumentRefused):
        podman_guard.rewrite(policy, [*CLI_RUN[:1], *extra, *CLI_RUN[1:]])


def test_events_hear_only_of_the_runs_containers(policy):
    args = podman_guard.rewrite(policy, ["events", "--format", "json", "--filter", "event=start"])
    assert args[-2:] == ["--filter", "label=dev.prebuilds.run=run1"]


def test_a_networked_run_gets_the_filtering_hook(tmp_path, monkeypatch):
    policy = GuardPolicy("/usr/bin/podman", WS, "run2", "org", "slirp4netns:allow_host_loopback=false", 1, 1, 10)
    shim = write_guard(tmp_path / "g", policy)
    monkeypatch.setenv(GUARD_POLICY_ENV, str(shim.parent / "policy.json"))
    loaded = podman_guard.load_policy()
    hook = json.loads((tmp_path / "g" / "hooks" / "network-filter.json").read_text())
    assert hook["stages"] == ["createRuntime"] and "runner.podman_hook" in " ".join(hook["hook"]["args"])
    args = podman_guard.rewrite(loaded, CLI_RUN)
    assert args[0] == f"--hooks-dir={tmp_path / 'g' / 'hooks'}" and args[1] == "run"
    assert "--network=slirp4netns:allow_host_loopback=false" in args


def test_builds_get_no_network_without_the_class_allowing_it(policy):
    args = podman_guard.rewrite(policy, ["build", "-f", f"{WS}/Dockerfile", "-t", "x", WS])
    assert args[:3] == ["build", "--network=none", f"--memory={1 << 30}"]
    with pytest.raises(ArgumentRefused):
        podman_guard.rewrite(policy, ["build", "-f", "/etc/Dockerfile", WS])


def test_exec_options_and_container_are_read_as_podman_does():
    assert podman_guard.parse_exec(["-i", "-u", "vscode", "-e", "A=1", "-w", "/w", "ctr", "sh", "-u"]) == (
        {"--user": "vscode", "--env": "A=1", "--workdir": "/w"},
        "ctr",
    )
    assert podman_guard.parse_exec(["--user=root", "c2", "ls"]) == ({"--user": "root"}, "c2")


# --- the CLI's event stream ------------------------------------------------------------------


def stream(*events) -> list[tuple[str, str, str]]:
    return [("cli", "stderr", json.dumps(e)) for e in events]


class FakePodman:
    def run(self, *args, check=True, **kwargs):
        class Done:
            returncode, stdout = 0, "123456789\n"

        return Done()


def test_events_become_steps_and_whole_lines_in_order():
    lines, steps = [], []
    events = _Events(lines.extend, lambda e: steps.append((e.step, e.status, e.exit_status, e.bytes)), FakePodman())
    events.feed(
        stream(
            {"type": "start", "text": "Run: podman pull mcr.microsoft.com/x:1"},
            {"type": "stop", "text": "Run: podman pull mcr.microsoft.com/x:1"},
            {"type": "start", "text": "Starting container"},
            {"type": "text", "level": 3, "text": "Container started"},
            {"type": "raw", "text": "\x1b[1mRunning the onCreateCommand from devcontainer.json...\x1b[0m\r\n"},
            {"type": "progress", "name": "Running onCreateCommand...", "status": "running"},
            {"type": "raw", "text": "first li"},
        )
    )
    events.feed(
        stream(
            {"type": "raw", "text": "ne\nsecond line\nthird"},
            {"type": "text", "level": 3, "text": "onCreateCommand from devcontainer.json failed with exit code 3."},
            {"type": "progress", "name": "Running onCreateCommand...", "status": "failed"},
            {"type": "text", "level": 1, "text": "a trace line nobody needs"},
        )
    )
    assert steps == [
        ("image", "running", None, None),
        ("image", "succeeded", None, 123456789),
        ("container", "running", None, None),
        ("container", "succeeded", None, None),
        ("onCreateCommand", "running", None, None),
        ("onCreateCommand", "failed", 3, None),
    ]
    texts = [(step, text) for step, _, text in lines]
    assert texts == [
        ("container", "Container started"),
        ("onCreateCommand", "\x1b[1mRunning the onCreateCommand from devcontainer.json...\x1b[0m"),
        ("onCreateCommand", "first line"),
        ("onCreateCommand", "second line"),
        ("onCreateCommand", "third"),
        ("onCreateCommand", "onCreateCommand from devcontainer.json failed with exit code 3."),
    ]
    assert (events.failed_step, events.exit_status) == ("onCreateCommand", 3)


def test_tool_messages_lose_their_log_frame():
    assert tool_message('time="x" level=fatal msg="pinging \\"registry\\": refused"\n') == 'pinging "registry": refused'
    assert tool_message("Error: no such image\n") == "no such image"
    assert tool_message("") == "no message"


class _Inspect:
    """podman container inspect as answered for the run's container (no podman is started)."""

    def __init__(self, returncode=0, labels=None, running=True, stderr=""):
        self.calls = []
        self.answer = (returncode, labels, running, stderr)

    def __call__(self, argv, **kwargs):
        self.calls.append(argv)
        returncode, labels, running, stderr = self.answer
        body = [{"Id": "0123456789abcdef", "Config": {"Labels": labels}, "State": {"Running": running}}]
        return type("Done", (), {"returncode": returncode, "stdout": json.dumps(body), "stderr": stderr})()


RUN_PS = ["ps", "-q", "-a", "--filter", "label=dev.prebuilds.run=run1"]


def test_the_clis_ps_for_its_own_container_reads_that_container_alone(policy, monkeypatch):
    inspect = _Inspect(labels={"dev.prebuilds.run": "run1", "x": "y"})
    monkeypatch.setattr(podman_guard.subprocess, "run", inspect)
    assert podman_guard.answer_ps(policy, RUN_PS) == "0123456789ab\n"
    assert inspect.calls == [["/usr/bin/podman", "container", "inspect", "prebuild-run1"]]
    # Every label filter must match, as podman's would.
    assert podman_guard.answer_ps(policy, [*RUN_PS, "--filter", "label=x=y"]) == "0123456789ab\n"
    assert podman_guard.answer_ps(policy, [*RUN_PS, "--filter", "label=x"]) == "0123456789ab\n"
    assert podman_guard.answer_ps(policy, [*RUN_PS, "--filter", "label=x=z"]) == ""
    # Without -a, a stopped container is not listed.
    inspect.answer = (0, {"dev.prebuilds.run": "run1"}, False, "")
    assert podman_guard.answer_ps(policy, ["ps", "-q", "--filter", "label=dev.prebuilds.run=run1"]) == ""
    assert podman_guard.answer_ps(policy, RUN_PS) == "0123456789ab\n"
    # No such container yet: an empty list.
    inspect.answer = (125, None, False, "Error: inspecting object: no such container prebuild-run1")
    assert podman_guard.answer_ps(policy, RUN_PS) == ""


def test_any_other_ps_goes_to_podman(policy, monkeypatch):
    inspect = _Inspect(returncode=125, stderr="Error: database is locked")
    monkeypatch.setattr(podman_guard.subprocess, "run", inspect)
    for argv in (
        ["ps", "-a"],
        ["ps", "-q", "-a", "--filter", "label=dev.prebuilds.run=another-run"],
        ["ps", "-q", "-a", "--filter", "name=prebuild-run1"],
        ["ps", "-q", "-a", "--filter"],
    ):
        assert podman_guard.answer_ps(policy, argv) is None, argv
    assert inspect.calls == []
    # An inspect that fails for another reason than absence: podman's own ps answers.
    assert podman_guard.answer_ps(policy, RUN_PS) is None
