"""A prebuild in the devcontainer's own container: the reference Dev Containers CLI on podman.

`devcontainer up --prebuild` does what the spec says a prebuild does (pull or build the image,
features included, start the container, run onCreateCommand and updateContentCommand, nothing
after), with podman behind the guard (runner.podman_guard) and a vetted copy of the repository's
devcontainer.json (runner.container_policy.vet_config: initializeCommand, privileged, widening
runArgs, host mounts, compose files dropped and named in the warning). Its JSON event stream
becomes the prebuild's steps and log lines, live. Then the container's changes and the workspace
become one OCI layer above its image (runner.oci), pushed to the registry.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._fs import cleanup_tree, replace_in_tree
from ._proc import Watched, process_group_killer, pump, raise_if_stopped
from .container_policy import VettedConfig, vet_config
from .devcontainer import DevcontainerConfig
from .errors import LifecycleFailed, SandboxError, SnapshotError
from .lifecycle import PROCESS_INTERVAL, ForkBombWatch, LogLine, StepEvent, now
from .oci import (
    IdShift,
    Layer,
    LayerSource,
    Layout,
    Registry,
    push,
    push_over_http,
    scan,
    snapshot_manifest,
    tool_message,
    write_layer,
)
from .podman import RUN_LABEL, GuardPolicy, Podman, container_name, network_option, write_guard
from .podman_guard import WORKSPACE_TARGET
from .sandbox import SandboxLimits
from .snapshot import SnapshotInfo
from .store import human_bytes

# Without a devcontainer.json the spec's tools start a default image (Codespaces and Ona do too).
DEFAULT_IMAGE = "mcr.microsoft.com/devcontainers/base:bookworm"
_EXIT = re.compile(r"failed with exit code (\d+)")
_LIFECYCLE = re.compile(r"^Running (\w+)\.\.\.$")
_ANNOUNCED = re.compile(r"Running the (\w+) from ")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class ContainerBackend:
    """Everything the container backend needs on a runner host."""

    podman: Podman
    cli: Path  # the Dev Containers CLI (node_modules/.bin/devcontainer)
    registry: Registry
    layout: Layout  # the runner's OCI layout (base image cache)
    work_dir: Path  # per-run folders (the guard's policy, the CLI's temporary files)
    organization: str = ""
    default_image: str = DEFAULT_IMAGE


@dataclass
class CliResult:
    container_id: str | None
    workspace_folder: str | None
    failure: str | None


class _Events:
    """The CLI's --log-format json stream to steps and log lines."""

    def __init__(self, on_lines: Callable[[list[LogLine]], None], on_step: Callable[[StepEvent], None], podman: Podman):
        self.on_lines, self.on_step, self.podman = on_lines, on_step, podman
        self.open: dict[str, StepEvent] = {}  # step -> its start
        self.lifecycle: str | None = None
        self.exit_status: int | None = None
        self.failed_step: str | None = None
        self.image: str | None = None
        self.stdout: list[str] = []
        self.partial: dict[str, str] = {}  # step -> the start of a line not ended yet
        # Lines not delivered yet: delivered before every step event, so that the log and the
        # timeline keep one order.
        self.pending: list[LogLine] = []

    def deliver(self) -> None:
        if self.pending:
            lines, self.pending = self.pending, []
            self.on_lines(lines)

    def start(self, step: str) -> None:
        if step not in self.open:
            event = StepEvent(step, "running", now())
            self.open[step] = event
            self.deliver()
            self.on_step(event)

    def end(self, step: str, status: str, **extra) -> None:
        self.flush(step)
        started = self.open.pop(step, None)
        if started is not None:
            self.deliver()
            self.on_step(StepEvent(step, status, started.started_at, now(), **extra))

    def close_all(self, status: str) -> None:
        self.flush()
        for step in list(self.open):
            self.end(step, status, exit_status=self.exit_status if step == self.failed_step else None)
        self.deliver()

    def feed(self, batch: list[tuple[str, str, str]]) -> None:
        for _label, stream, text in batch:
            if stream == "stdout":
                self.stdout.append(text)
                continue
            try:
                event = json.loads(text)
            except ValueError:
                self.pending.append((self.lifecycle or "container", "stderr", text))
                continue
            if isinstance(event, dict):
                self._event(event)
        self.deliver()

    def _event(self, event: dict) -> None:
        kind, text = event.get("type"), str(event.get("text", ""))
        if kind == "progress":
            match = _LIFECYCLE.match(str(event.get("name", "")))
            if match:
                step, status = match.group(1), event.get("status")
                if status == "running":
                    self.end("container", "succeeded")
                    self.lifecycle = step
                    self.start(step)
                elif status in ("succeeded", "failed"):
                    if status == "failed":
                        self.failed_step = step
                    self.end(step, status, exit_status=self.exit_status if status == "failed" else 0)
                    self.lifecycle = None
        elif kind in ("start", "stop"):
            self._phase(kind, text)
        elif kind == "raw" or (kind == "text" and event.get("level", 0) >= 3):
            if kind == "text":
                # A message of the CLI's own is a whole line of its own (raw output comes in
                # chunks): it neither continues nor is continued by the command's output.
                self.flush(self.lifecycle or self._current())
                if not text.endswith("\n"):
                    text += "\n"
            if match := _EXIT.search(text):
                self.exit_status = int(match.group(1))
            if match := _ANNOUNCED.search(text):
                # The CLI announces a lifecycle command just before its progress event: the line
                # belongs to the command's own step.
                self.end("container", "succeeded")
                self.lifecycle = match.group(1)
                self.start(self.lifecycle)
            self._text(self.lifecycle or self._current(), text)

    def _text(self, step: str, text: str) -> None:
        # Raw events are chunks of a command's output, cut anywhere: a line may span several.
        text = self.partial.pop(step, "") + text.replace("\r\n", "\n").replace("\r", "\n")
        *complete, rest = text.split("\n")
        if rest:
            self.partial[step] = rest
        self.pending.extend((step, "stdout", line) for line in complete)

    def flush(self, step: str | None = None) -> None:
        """Deliver what is left of a line (a step ended, or the stream did)."""
        for name in [step] if step else list(self.partial):
            rest = self.partial.pop(name, "")
            if rest:
                self.pending.append((name, "stdout", rest))

    def _current(self) -> str:
        return next(reversed(self.open), "container") if self.open else "container"

    def _phase(self, kind: str, text: str) -> None:
        if text.startswith("Run: ") and " pull " in f" {text[5:]} ":
            if kind == "start":
                self.image = text.split()[-1]
                self.start("image")
            else:
                self.end("image", "succeeded", bytes=self._image_bytes())
        elif text.startswith("Run: ") and (" build " in text or " buildx build " in text):
            if kind == "start":
                self.start("build")
            else:
                self.end("build", "succeeded")
        elif text == "Starting container" and kind == "start":
            self.start("container")

    def _image_bytes(self) -> int | None:
        if not self.image:
            return None
        done = self.podman.run("image", "inspect", "--format", "{{.Size}}", self.image, check=False)
        return int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip().isdigit() else None


@dataclass(frozen=True)
class PreparedConfig:
    workspace: Path
    relative: str  # the configuration file, relative to the workspace
    vetted: VettedConfig
    original: bytes | None  # the repository's own file, put back by restore()
    mode: int = 0o644

    @property
    def path(self) -> Path:
        return self.workspace / self.relative

    def restore(self) -> None:
        """Put the repository's file back. The container has had the workspace meanwhile: its
        commands may have made a folder on the way a link to a host folder, so the write goes
        through no link (runner._fs.replace_in_tree); a tree bent that way keeps no file there."""
        # OSError: the way is not plain folders any more; nothing of ours is written anywhere.
        with contextlib.suppress(OSError):
            replace_in_tree(self.workspace, self.relative, self.original, self.mode)


def prepare_config(workspace: Path, config: DevcontainerConfig | None, default_image: str) -> PreparedConfig:
    """Put the vetted configuration in place of the repository's file (the CLI reads only files
    named devcontainer.json, and its relative paths, build.context and ./features, must mean what
    they meant). restore() puts the repository's own file back before the snapshot."""
    if config is None:
        vetted = VettedConfig({"image": default_image}, ())
        relative = ".devcontainer.json"
    else:
        vetted = vet_config(config.data)
        relative = config.path  # resolved inside the workspace by load_devcontainer
    path = workspace / relative
    is_file = path.is_file() and not path.is_symlink()
    original = path.read_bytes() if is_file else None
    mode = stat.S_IMODE(path.stat().st_mode) if is_file else 0o644
    replace_in_tree(workspace, relative, json.dumps(vetted.data).encode(), 0o644)
    return PreparedConfig(workspace, relative, vetted, original, mode)


def run_cli(
    backend: ContainerBackend,
    *,
    run_id: str,
    workspace: Path,
    config_path: Path,
    limits: SandboxLimits,
    on_lines: Callable[[list[LogLine]], None],
    on_step: Callable[[StepEvent], None],
    should_stop,
    deadline: float | None,
    on_tick: Callable[[], None] | None,
    run_dir: Path,
) -> CliResult:
    """`devcontainer up --prebuild` for the workspace; the container is left running."""
    tmp = run_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    refusals = run_dir / "refused.txt"
    policy = GuardPolicy(
        podman=_which(backend.podman.binary),
        workspace=str(workspace),
        run_id=run_id,
        organization=backend.organization,
        network=network_option(limits.allow_network),
        memory_bytes=limits.memory_bytes or 0,
        cpus=limits.cpus or 0,
        pids_limit=limits.max_processes or 0,
        build_roots=[str(tmp)],
        refusals_path=str(refusals),
        allowed_private_networks=list(limits.allowed_private_networks),
    )
    shim = write_guard(run_dir / "guard", policy)
    command = [
        str(backend.cli),
        "up",
        "--workspace-folder",
        str(workspace),
        "--config",
        str(config_path),
        "--prebuild",
        "--docker-path",
        str(shim),
        "--log-format",
        "json",
        # One id label only: podman ORs label filters of one key, so a second label shared with
        # other runs (the organization's) would find their containers (the guard refuses them).
        "--id-label",
        f"{RUN_LABEL}={run_id}",
        "--remove-existing-container",
        "--update-remote-user-uid-default",
        "never",
    ]
    env = {**backend.podman.env(), "TMPDIR": str(tmp)}
    events = _Events(on_lines, on_step, backend.podman)
    # The CLI's event stream goes to a file, not a pipe: Node writes to a pipe asynchronously, and
    # what it still holds when the CLI exits is lost (on a busy runner, chatty's last 100,000
    # lines were); to a file it writes synchronously. The pump reads the file as it grows.
    stream = _EventFile(run_dir / "cli-events.jsonl")
    with open(stream.path, "wb") as stderr:
        popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=str(run_dir),
            start_new_session=True,
        )
    watched = Watched("cli", popen, process_group_killer(popen))
    watch = _ContainerWatch(backend.podman, run_id, limits)

    def stop_reason():
        return watch.check() or (should_stop() if should_stop is not None else None)

    def tick():
        events.feed(stream.read())
        if on_tick is not None:
            on_tick()

    try:
        results = pump([watched], on_lines=events.feed, should_stop=stop_reason, deadline=deadline, on_tick=tick)
    except BaseException:
        events.close_all("stopped")
        raise
    events.feed(stream.read(final=True))
    if results["cli"].stopped_reason:
        events.failed_step = events.lifecycle
        events.close_all("failed" if watch.violation else "stopped")
    if watch.violation:
        raise LifecycleFailed(watch.violation, step=events.failed_step or "container", exit_status=None)
    raise_if_stopped(results)
    outcome = _outcome(events.stdout)
    if refusals.exists():
        events.close_all("failed")
        reasons = refusals.read_text().strip().splitlines()
        raise SandboxError(reasons[0] if len(reasons) == 1 else f"{reasons[0]} (and {len(reasons) - 1} more)")
    if outcome.get("outcome") != "success":
        events.close_all("failed")
        step = events.failed_step
        if step is not None:
            status = events.exit_status
            message = f"{step} exited with status {status}" if status is not None else f"{step} failed"
            if watch.saw_oom_kill or watch.out_of_memory():
                message += f": out of memory (the limit is {human_bytes(limits.memory_bytes or 0)}{watch.of})"
            elif watch.saw_refused_fork or watch.forks_refused():
                message += f": it reached the process limit of {limits.max_processes}{watch.of}"
            raise LifecycleFailed(message, step=step, exit_status=status)
        message = outcome.get("description") or outcome.get("message") or "the Dev Containers CLI failed"
        raise SandboxError(f"the container could not be started: {_ANSI.sub('', str(message))}")
    events.close_all("succeeded")
    # Where the checkout was mounted (the guard saw the CLI's bind mount): the workspace layer goes
    # there, whatever workspaceFolder names as the folder to work in.
    target = run_dir / "guard" / WORKSPACE_TARGET
    mounted = target.read_text().strip() if target.exists() else None
    return CliResult(outcome.get("containerId"), mounted or outcome.get("remoteWorkspaceFolder"), None)


class _EventFile:
    """The CLI's stderr, a file it appends JSON event lines to: read() returns the lines added
    since the last call (a line still being written waits for the next one, or final)."""

    def __init__(self, path: Path):
        self.path, self.offset, self.rest = path, 0, b""

    def read(self, *, final: bool = False) -> list[tuple[str, str, str]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.rest + data
        *lines, self.rest = data.split(b"\n")
        if final and self.rest:
            lines, self.rest = [*lines, self.rest], b""
        return [("cli", "stderr", line.decode("utf-8", errors="replace")) for line in lines]


class _ContainerWatch:
    """The run's container's cgroup, read on the host: a fork bomb held at the process limit
    (pids.current at pids.max for FORK_BOMB_SECONDS, as the bubblewrap backend judges it) stops the
    run, and an out-of-memory kill is named in the failure."""

    CGROUP = Path("/sys/fs/cgroup")

    def __init__(self, podman: Podman, run_id: str, limits: SandboxLimits, clock=time.monotonic):
        self.podman, self.run_id, self.limits, self.clock = podman, run_id, limits, clock
        self.cgroup: str | None = None
        self.next_lookup = 0.0
        self.violation: str | None = None
        self.next_check = 0.0
        self.of = f" ({limits.origin})" if limits.origin else ""
        self.fork_bomb = ForkBombWatch(limits.max_processes or 0, self.of)
        # Seen while the container ran (it may be gone by the time the failure is written: a bomb
        # also starves the container's own keep-alive loop, which then ends the container).
        self.saw_refused_fork = False
        self.saw_oom_kill = False

    def _path(self) -> str | None:
        if self.cgroup is None and self.clock() >= self.next_lookup:
            self.next_lookup = self.clock() + PROCESS_INTERVAL  # a podman call: not on every poll
            # By the name the guard gave it (an inspect of one container, not a `ps` of all); not
            # there yet, or podman slow to answer: the next poll asks again.
            with contextlib.suppress(SandboxError):
                done = self.podman.run(
                    "container",
                    "inspect",
                    "--format",
                    "{{.State.CgroupPath}}",
                    container_name(self.run_id),
                    check=False,
                    timeout=10,
                )
                if done.returncode == 0:
                    self.cgroup = done.stdout.strip().lstrip("/") or None
        return self.cgroup

    def _read(self, controller: str, name: str) -> str | None:
        path = self._path()
        if path is None:
            return None
        for candidate in (self.CGROUP / controller / path / name, self.CGROUP / path / name):  # v1, then v2
            with contextlib.suppress(OSError):
                return candidate.read_text()
        return None

    def check(self) -> str | None:
        now_ = self.clock()
        # The counters on every poll (three small reads): the container may not live long.
        self.saw_refused_fork = self.saw_refused_fork or self.forks_refused()
        self.saw_oom_kill = self.saw_oom_kill or self.out_of_memory()
        if self.violation is None and self.limits.max_processes and now_ >= self.next_check:
            self.next_check = now_ + PROCESS_INTERVAL
            current = self._read("pids", "pids.current")
            if current is not None:
                self.violation = self.fork_bomb.sample(int(current), now_)
        return self.violation

    def forks_refused(self) -> bool:
        text = self._read("pids", "pids.events")
        counts = dict(line.split() for line in (text or "").splitlines() if len(line.split()) == 2)
        return int(counts.get("max", 0)) > 0

    def out_of_memory(self) -> bool:
        for controller, name in (("memory", "memory.oom_control"), ("memory", "memory.events")):
            text = self._read(controller, name)
            if text is not None:
                counts = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
                return int(counts.get("oom_kill", 0)) > 0
        return False


def _outcome(stdout: list[str]) -> dict:
    for line in reversed(stdout):
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict) and "outcome" in value:
                return value
    return {"outcome": "error", "message": "the Dev Containers CLI gave no result"}


def _which(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        raise SandboxError(f"{binary} is not installed on this runner")
    return os.path.realpath(found)


# --- the snapshot ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerState:
    image_id: str
    upper_dir: Path
    shift: IdShift
    labels: dict[str, str]


def inspect_container(podman: Podman, container_id: str) -> ContainerState:
    data = json.loads(podman.run("container", "inspect", container_id).stdout)[0]
    mappings = (data.get("HostConfig") or {}).get("IDMappings") or {}
    shift = IdShift(_base(mappings.get("UidMap")), _base(mappings.get("GidMap")))
    upper = (data.get("GraphDriver") or {}).get("Data", {}).get("UpperDir")
    if not upper:
        raise SandboxError("the container's storage has no upper directory (is podman using overlay?)")
    labels = {k: v for k, v in ((data.get("Config") or {}).get("Labels") or {}).items() if k == "devcontainer.metadata"}
    return ContainerState(data["Image"], Path(upper), shift, labels)


def _base(mapping) -> int:
    # podman shows ["0:2147483647:65536"] (container:host:size); the range of container id 0.
    for entry in mapping or []:
        inside, host, _size = (int(x) for x in str(entry).split(":"))
        if inside == 0:
            return host
    return 0


def _ensure_base(backend: ContainerBackend, image_id: str) -> str:
    """The image the container ran, in the runner's OCI layout (once per image: a cache)."""
    ref = f"base-{image_id[:32]}"
    with contextlib.suppress(Exception):
        backend.layout.manifest_of(ref)
        return ref
    backend.layout.root.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["skopeo", "copy", "--quiet", f"containers-storage:{image_id}", f"oci:{backend.layout.root}:{ref}"],
        env=backend.podman.env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=3600,
    )
    if done.returncode != 0:
        raise SandboxError(f"cannot read the container's image: {done.stderr.strip().splitlines()[-1:]}")
    return ref


# The share of snapshot_completion_percentage that writing the layer takes; the push of its
# compressed bytes (and the base layers the registry lacks) takes the rest up to 99, and 100 is
# the manifest put. Writing reads the whole tree and compresses it; the push sends a third or less
# of its bytes, over a network.
WRITE_SHARE = 60


def snapshot_container(
    backend: ContainerBackend,
    *,
    container_id: str,
    workspace: Path,
    workspace_folder: str,
    snapshot_id: str,
    on_progress: Callable[[int], None],
    should_stop,
) -> SnapshotInfo:
    podman = backend.podman
    podman.run("stop", "-t", "2", container_id, timeout=60)
    state = inspect_container(podman, container_id)
    target = workspace_folder.strip("/")
    sources = [
        LayerSource(state.upper_dir, overlay=True, skip=frozenset({target})),
        LayerSource(workspace, prefix=target),
    ]
    scanned = scan(sources)
    total, files = max(1, scanned.tar_bytes), scanned.files
    last = [-1]

    def report(percent: int) -> None:
        if percent > last[0]:  # monotonic, and once per step
            last[0] = percent
            on_progress(percent)

    def on_bytes(done: int) -> None:
        # Writing the layer (tar + zstd of the tree) to WRITE_SHARE, then the bytes pushed.
        report(min(WRITE_SHARE, done * WRITE_SHARE // total))

    def on_pushed(fraction: float) -> None:
        report(min(99, WRITE_SHARE + int(fraction * (99 - WRITE_SHARE))))

    base_ref = _ensure_base(backend, state.image_id)
    layer: Layer = write_layer(
        backend.layout.blobs, sources, state.shift, on_bytes=on_bytes, should_stop=should_stop, scanned=scanned
    )
    labels = {**state.labels, WORKSPACE_LABEL: "/" + target}
    manifest = snapshot_manifest(backend.layout, base_ref, layer, labels, created_by=f"prebuild {snapshot_id}")
    manifest_digest, manifest_size = backend.layout.put_json(manifest)
    ref = f"snapshot-{snapshot_id}"
    backend.layout.tag(ref, manifest_digest, manifest_size)
    try:
        digest = push_over_http(
            backend.layout, manifest_digest, backend.registry, snapshot_id, on_pushed, should_stop=should_stop
        )
        if digest is None:  # a registry with credentials or a CA of its own: skopeo knows them
            with tempfile.NamedTemporaryFile(dir=backend.work_dir, prefix="digest-") as digest_file:
                digest = push(backend.layout, ref, backend.registry, snapshot_id, podman.env(), Path(digest_file.name))
    finally:
        # The layout keeps base images only: the snapshot's own blobs are in the registry now.
        backend.layout.untag(ref, blobs=[layer.digest, manifest["config"]["digest"], manifest_digest])
    on_progress(100)
    return SnapshotInfo(
        size_bytes=layer.size,
        sha256=digest.removeprefix("sha256:"),
        file_count=files,
        source_bytes=total,
        image=backend.registry.pinned(digest),
    )


# --- restores ---------------------------------------------------------------------------------

# The snapshot image's own record of where its workspace is.
WORKSPACE_LABEL = "dev.prebuilds.workspace-folder"


def pull_snapshot(backend: ContainerBackend, image: str) -> None:
    """The snapshot image in this runner host's storage. The first pull is the only transfer
    (layers the host has already, the base image's, are not fetched again); podman checks the
    manifest digest the reference is pinned to."""
    if backend.podman.run("image", "exists", image, check=False).returncode == 0:
        return
    tls = "true" if backend.registry.tls_verify else "false"
    done = backend.podman.run("pull", "--quiet", f"--tls-verify={tls}", image, timeout=3600, check=False)
    if done.returncode != 0:
        raise SnapshotError(f"cannot pull the snapshot {image}: {tool_message(done.stderr)}")


def workspace_folder(backend: ContainerBackend, image: str) -> str:
    template = '{{index .Config.Labels "' + WORKSPACE_LABEL + '"}}'
    folder = backend.podman.run("image", "inspect", "--format", template, image).stdout.strip()
    if not folder.startswith("/") or folder == "/":
        raise SnapshotError(f"the snapshot {image} does not say where its workspace is")
    return folder


def export_workspace(backend: ContainerBackend, image: str, dest: Path) -> Path:
    """The snapshot's workspace tree copied out of its image into dest (a folder of the runner:
    what warm pools hold until their instances become containers)."""
    pull_snapshot(backend, image)
    folder = workspace_folder(backend, image)
    container = backend.podman.run("create", "--network=none", image, "true").stdout.strip()
    try:
        mount = Path(backend.podman.run("mount", container).stdout.strip())
        try:
            shutil.copytree(mount / folder.lstrip("/"), dest, symlinks=True)
        finally:
            backend.podman.run("umount", container, check=False)
    finally:
        backend.podman.run("rm", "-f", container, check=False)
    return dest


def cleanup_run(backend: ContainerBackend, run_id: str, run_dir: Path) -> None:
    backend.podman.remove_run(run_id)
    cleanup_tree(run_dir)
