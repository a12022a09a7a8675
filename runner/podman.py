"""The container engine: podman, driven with the runner's own settings.

Podman reads the runner host's registry configuration as any podman host does (registries.conf
and registries.conf.d for mirrors and insecure registries, auth.json for credentials), so an
operator configures images as usual. What this host kind needs to run containers at all is in the
runner's own containers.conf (CONTAINERS_CONF): runc (crun refuses the host's hybrid cgroup
layout), the cgroupfs manager (no systemd) and no default ulimits (root here lacks
CAP_SYS_RESOURCE).

The Dev Containers CLI runs podman through the guard (runner.podman_guard): every argument vector
it passes is vetted by runner.container_policy, and the guard adds what the runner decides (user
namespace, network, the class's limits, the run's label) to every container it creates.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .errors import SandboxError, SandboxUnavailable

CONTAINERS_CONF = """\
# Written by the prebuild runner: what podman needs on this host kind (see runner/podman.py).
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""

# Labels stamped on every container a run creates: which run, and which organization it is for.
RUN_LABEL = "dev.prebuilds.run"
ORG_LABEL = "dev.prebuilds.organization"


def host_problem(cli: Path, binary: str = "podman") -> str | None:
    """Why this host cannot run the container backend, or None."""
    absent = [tool for tool in (binary, "skopeo") if shutil.which(tool) is None]
    if absent:
        return f"not installed: {', '.join(absent)} (apt-get install podman runc uidmap skopeo)"
    if not Path(cli).exists():
        return f"the Dev Containers CLI is not installed at {cli} (make install runs npm ci)"
    for name in ("/etc/subuid", "/etc/subgid"):
        path = Path(name)
        if not path.exists() or not any(line.startswith("containers:") for line in path.read_text().splitlines()):
            return f"{name} has no range for the user containers (podman --userns=auto needs one)"
    return None


@dataclass(frozen=True)
class Podman:
    """How the runner calls podman: the binary, and a folder of its own for containers.conf and
    the guard. registries_conf: a registries.conf to use instead of the host's (tests; an operator
    normally leaves it None)."""

    home: Path
    binary: str = "podman"
    registries_conf: Path | None = None

    @property
    def conf_path(self) -> Path:
        return self.home / "containers.conf"

    def ensure(self) -> None:
        if shutil.which(self.binary) is None:
            raise SandboxUnavailable(f"podman ({self.binary}) is not installed on this runner")
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.conf_path.exists() or self.conf_path.read_text() != CONTAINERS_CONF:
            tmp = self.conf_path.with_suffix(".tmp")
            tmp.write_text(CONTAINERS_CONF)
            tmp.replace(self.conf_path)
        (self.home / "cli-home").mkdir(mode=0o700, exist_ok=True)

    def env(self) -> dict[str, str]:
        """The whole environment of podman and of the Dev Containers CLI: nothing of the worker's
        own (its database URL, secret key, broker password), because devcontainer.json can copy
        the CLI's environment into the container with ${localEnv:NAME}."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(self.home / "cli-home"),
            "LANG": "C.UTF-8",
            "CONTAINERS_CONF": str(self.conf_path),
        }
        if self.registries_conf is not None:
            env["CONTAINERS_REGISTRIES_CONF"] = str(self.registries_conf)
        return env

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        try:
            done = subprocess.run(
                [self.binary, *args],
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"podman {args[0]} did not finish within {timeout:.0f} s") from exc
        if check and done.returncode != 0:
            raise SandboxError(f"podman {' '.join(args[:2])} failed: {_last_line(done.stderr)}")
        return done

    def remove_run(self, run_id: str) -> None:
        """Remove every container of a run, running or not (idempotent). The run's container by its
        name first: `podman ps` reads every container's state, and waits on any container another
        run's commands keep busy (a fork bomb held at its limit made it take minutes)."""
        self.run("rm", "-f", "-t", "0", "--ignore", container_name(run_id), check=False, timeout=60)
        try:
            ids = self.run("ps", "-aq", "--filter", f"label={RUN_LABEL}={run_id}", check=False, timeout=30).stdout
        except SandboxError:
            return  # the named one is gone; a stray one is left to the next sweep
        if ids.split():
            self.run("rm", "-f", "-t", "0", *ids.split(), check=False, timeout=60)


def container_name(run_id: str) -> str:
    """The name the guard gives a run's container (so that the runner finds it without a `ps`)."""
    return f"prebuild-{run_id}"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def userns_options(organization: str = "") -> list[str]:
    """The user namespace of every container the runner creates, prebuild or instance (one place,
    so that pool instances and prebuilds cannot drift apart): --userns=auto, a range of 65536
    subordinate ids of its own (the user "containers" in /etc/subuid and /etc/subgid), so root in
    the container is an unprivileged host uid and no two containers, of one organization or of
    two, share host ids.

    Why not a fixed range per organization or per snapshot (so that containers/storage would reuse
    one id-shifted copy of the image): there is no copy to reuse. On this host kind (kernel 6.x,
    podman 4.3's overlay driver) the image's layers are mounted through idmapped mounts (the
    layer's "mapped" folder), so an extra container of an image costs its own upper directory only
    (tens of kB), whatever its mapping; the ~485 MB once measured per instance was `du` counting
    the running containers' mounted rootfs ("merged"), not disk. A shared range would only have
    given up isolation between one organization's containers. `organization` is accepted (and
    unused) so that a per-organization range can come back here if a storage driver without
    idmapped mounts needs one."""
    del organization
    return ["--userns=auto"]


@dataclass(frozen=True)
class GuardPolicy:
    """What the guard enforces for one run, written to a file the guard reads on every call."""

    podman: str  # the real podman binary
    workspace: str  # the only host folder a container may bind (the checkout)
    run_id: str
    organization: str
    network: str  # "none", or slirp4netns egress without the host's loopback
    memory_bytes: int
    cpus: float
    pids_limit: int
    build_roots: list[str] = field(default_factory=list)  # further folders a build may read
    refusals_path: str = ""  # where refused vectors are recorded for the failure message
    # With network: the private networks the container may reach (runner.podman_hook blocks the rest).
    allowed_private_networks: list[str] = field(default_factory=list)
    hooks_dir: str = ""  # the OCI hook that filters a networked container's routes

    def run_options(self) -> list[str]:
        return [
            *userns_options(self.organization),
            f"--network={self.network}",
            f"--memory={self.memory_bytes}",
            f"--memory-swap={self.memory_bytes}",  # no swap beyond the limit
            f"--cpus={self.cpus:g}",
            f"--pids-limit={self.pids_limit}",
            f"--label={RUN_LABEL}={self.run_id}",
            f"--label={ORG_LABEL}={self.organization}",
            f"--name={container_name(self.run_id)}",
        ]


GUARD_POLICY_ENV = "PREBUILD_GUARD_POLICY"
RUNNER_ROOT = Path(__file__).resolve().parent.parent


def python_command(module: str) -> str:
    """A shell command running module's main(argv) in a bare interpreter: -I (nothing from the
    environment), -S (no site-packages: the guard runs once per podman call, and the venv's site
    setup alone cost more than podman itself), only the runner on the path."""
    code = (
        f"import sys; sys.path.insert(0, {str(RUNNER_ROOT)!r}); from {module} import main; sys.exit(main(sys.argv[1:]))"
    )
    return f"{shlex.quote(sys.executable)} -I -S -c {shlex.quote(code)}"


def write_guard(directory: Path, policy: GuardPolicy) -> Path:
    """A policy file and an executable that runs the guard with it: the CLI's --docker-path. With
    network, also the hooks folder of runner.podman_hook."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    policy_path = directory / "policy.json"
    if policy.network != "none":
        hooks = directory / "hooks"
        hooks.mkdir(mode=0o700, exist_ok=True)
        hook = {
            "version": "1.0.0",
            "hook": {
                "path": "/bin/sh",
                "args": ["sh", "-c", f'exec {python_command("runner.podman_hook")} "$0"', str(policy_path)],
            },
            "when": {"always": True},
            "stages": ["createRuntime"],
        }
        (hooks / "network-filter.json").write_text(json.dumps(hook))
        policy = replace(policy, hooks_dir=str(hooks))
    policy_path.write_text(json.dumps(asdict(policy)))
    policy_path.chmod(0o600)
    shim = directory / "podman"
    shim.write_text(
        f'#!/bin/sh\n{GUARD_POLICY_ENV}="{policy_path}" exec {python_command("runner.podman_guard")} "$@"\n'
    )
    shim.chmod(stat.S_IRWXU)
    return shim


def network_option(allow_network: bool) -> str:
    # Egress only: slirp4netns without the host's loopback (127.0.0.1 inside is the container's
    # own; the host's gateway address is not mapped to the host).
    return "slirp4netns:allow_host_loopback=false" if allow_network else "none"
