"""Run one command in a bubblewrap sandbox and stream its output.

What the sandboxed command sees: its workspace at /workspace (read-write, also HOME and
the current directory), /usr and the /bin, /sbin, /lib* links or directories read-only, a
short list of harmless /etc files (ETC_ENTRIES), a private /tmp, /proc and /dev, and
nothing else of the host: no data directory, no other workspace, no /root, /work or host
/tmp. It runs in new user, PID, IPC, UTS, cgroup and network namespaces, in its own
session, and cannot create a nested user namespace (--disable-userns).

Network. The sandbox always has a network namespace of its own: without allow_network only
its own loopback; with it, slirp4netns connects it to the outside but not to the runner
host's loopback, its own addresses, link-local or (unless limits.allowed_private_networks
names them) private addresses, and /etc/resolv.conf names slirp's DNS forwarder (netns.py
says how and why). Without slirp4netns, nsenter and ip a networked sandbox does not start.

Environment. Nothing of the runner's environment reaches the sandbox: bwrap itself (whose
fork is the sandbox's init, pid 1 inside, with a readable /proc/1/environ) and every helper
it needs are started with an explicit minimal environment (sandbox_env(), HELPER_ENV), the
command gets the same with --clearenv, no secret is on any command line, and no file
descriptor but stdin, stdout and stderr is left open in the sandbox (the ones bwrap is
handed are closed before the command starts).

Identity. When the runner is root, bwrap itself is started as an unprivileged host uid of
the run's own (uid 1000 inside), leased from runner.uids for the whole prebuild or workspace
build: its several commands, named commands in parallel included, share it, and no other run
has it meanwhile. The command therefore has no root power at all, not even over root-owned
files in its own workspace, RLIMIT_NPROC is really enforced (the kernel never enforces it for
host uid 0), and it is a budget of this run alone. Two consequences: the workspace is chowned
to that uid (and made 0700) before the first command, and every directory above the
workspace must be searchable (o+x) by that user, because bwrap resolves the bind source with
its credentials; run_sandboxed says so plainly if it is not. When the runner is not root,
bwrap runs as the runner's own user.

Limits, set with setrlimit before bwrap starts and inherited by everything in the sandbox:
  RLIMIT_AS     memory_bytes         enforced, but it is address space, not resident
                                     memory: runtimes that reserve big virtual areas
                                     (JVM, Go, V8) may need a generous value.
  RLIMIT_NPROC  max_processes        enforced per host uid, which is the run's own (see
                                     Identity). Not enforced when the runner is not root
                                     and the uid has CAP_SYS_RESOURCE.
  RLIMIT_FSIZE  max_file_size_bytes  enforced per file (SIGXFSZ); not a disk quota (the
                                     lifecycle watches disk_bytes, see runner.lifecycle).
  RLIMIT_CPU    cpu_seconds          enforced per process (SIGXCPU, SIGKILL 5 s later); a
                                     command that forks many workers can use more in
                                     total. The wall clock is bounded by the deadline.
  RLIMIT_CORE   0                    so crashes do not fill the workspace with core files.
  /tmp          tmp_bytes            a tmpfs of at most this size (bwrap --size): its pages
                                     are the host's memory, which no rlimit counts.
The umask inside is 022, whatever the runner's (the product runs with 077): the workspace is
the user's tree, snapshotted with its modes, and kept private by its own 0700 top directory.
A cgroup would give a real memory and CPU budget; none is delegated to the runner here.

Stopping. When should_stop() returns a reason (polled every POLL_INTERVAL = 0.4 s) or the
deadline passes, the sandbox's init process (found through bwrap's --info-fd) gets
SIGKILL, and the kernel kills every process of the sandbox's PID namespace with it; bwrap
gets SIGKILL too if it has not exited 1 s later. There is no SIGTERM stage inside the
sandbox: bwrap's init does not forward it, and a cancelled prebuild's workspace is thrown
away anyway. run_sandboxed waits, through a pidfd on that init process, until every
process is gone before it returns. bwrap runs with --die-with-parent and is itself
started with a parent-death signal, so a runner that dies takes its sandboxes with it.
In the unsandboxed mode the command's process group gets SIGTERM, then SIGKILL after 1 s.

Output. stdout and stderr are read from the calling thread with a selector; every
callback runs on the calling thread. Lines are delivered in batches to
on_lines(list[(stream, text)]) in order per stream; on_line(stream, text) is accepted
for convenience. Text is decoded as UTF-8 with errors='replace', without the newline.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import select
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import netns
from ._proc import Line, ShouldStop, Watched, process_group_killer, pump
from .errors import SandboxError, SandboxUnavailable
from .uids import FIRST_UID, default_pool

# The first uid of the sandbox range; each run leases one of its own (runner.uids).
SANDBOX_UID = FIRST_UID
# Modes of what a command creates in its workspace, whatever the runner's own umask is.
SANDBOX_UMASK = 0o022
INSIDE_UID = 1000
WORKSPACE_MOUNT = "/workspace"
ETC_ENTRIES = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "gai.conf",
    "group",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "passwd",
    "protocols",
    # No resolv.conf: the host's names the host's resolver; a networked sandbox gets its own.
    "services",
    "ssl",
    "timezone",
)
TOP_LEVEL_SYSTEM = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)  # loaded here: nothing should be loaded between fork and exec


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed command; None means no limit."""

    memory_bytes: int | None = 4 << 30
    max_processes: int | None = 512
    max_file_size_bytes: int | None = 4 << 30
    cpu_seconds: int | None = 3600
    allow_network: bool = False
    # The workspace's disk budget, watched while commands run (runner.lifecycle), and the size of
    # the sandbox's /tmp; bytes, so tests can use a few MiB.
    disk_bytes: int | None = 20 << 30
    tmp_bytes: int | None = 512 << 20
    # Names where the limits come from in messages, e.g. "environment class 'small'".
    origin: str | None = None
    # CIDRs inside the private ranges that a networked sandbox may reach (plain data from the
    # SANDBOX_ALLOWED_PRIVATE_NETWORKS setting); everything else private stays unreachable.
    allowed_private_networks: tuple[str, ...] = ()
    # CPUs a container may use (the container backend's cgroup limit; bubblewrap has cpu_seconds).
    cpus: float | None = None


@dataclass(frozen=True)
class CommandResult:
    exit_status: int | None
    stopped_reason: str | None


def sandbox_env(home: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "PYTHONUNBUFFERED": "1",
    }


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


def run_sandboxed(
    argv: Sequence[str],
    *,
    workspace: Path,
    limits: SandboxLimits,
    on_line: Callable[[str, str], None] | None = None,
    on_lines: Callable[[list[tuple[str, str]]], None] | None = None,
    should_stop: ShouldStop | None = None,
    deadline: float | None = None,
    allow_unsandboxed: bool = False,
    on_tick: Callable[[], None] | None = None,
    uid: int | None = None,
) -> CommandResult:
    """Run argv in the sandbox; return its exit status and why it was stopped (None if it was not).

    uid: the run's sandbox uid (runner.uids); when None, one is leased for this command alone.
    """

    def deliver(batch: list[Line]) -> None:
        if on_lines is not None:
            on_lines([(stream, text) for _, stream, text in batch])
        if on_line is not None:
            for _, stream, text in batch:
                on_line(stream, text)

    with contextlib.ExitStack() as stack:
        if uid is None:
            uid = stack.enter_context(default_pool().lease())
        watched = start_sandboxed(
            argv, workspace=workspace, limits=limits, allow_unsandboxed=allow_unsandboxed, uid=uid
        )
        finished = pump([watched], on_lines=deliver, should_stop=should_stop, deadline=deadline, on_tick=on_tick)
    result = finished[watched.label]
    return CommandResult(result.exit_status, result.stopped_reason)


def start_sandboxed(
    argv: Sequence[str],
    *,
    workspace: Path,
    limits: SandboxLimits,
    allow_unsandboxed: bool = False,
    label: str = "",
    uid: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Watched:
    """Start argv in the sandbox; pump() the returned Watched to stream output and wait.

    env: variables the command gets besides sandbox_env() (a run's secrets). They reach it through
    bwrap's own environment (which bwrap passes on when there are any, instead of --clearenv), never
    bwrap's argv: the host's process list shows argv to everyone, an environment to its owner only.

    uid: the run's own sandbox uid, leased from runner.uids by the caller for as long as any of
    its commands run; required when the runner is root.
    """
    if not argv:
        raise SandboxError("empty command")
    workspace = Path(workspace).resolve()
    if not workspace.is_dir():
        raise SandboxError(f"workspace {workspace} does not exist")
    bwrap = find_bwrap()
    if bwrap is None and not allow_unsandboxed:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed; install it (apt-get install bubblewrap) "
            "or allow unsandboxed runs to execute lifecycle commands without isolation"
        )
    tools = netns.find_tools() if bwrap is not None and limits.allow_network else None
    drop_root = os.geteuid() == 0
    if drop_root:
        if uid is None:
            raise SandboxError("internal: no sandbox uid was leased for this run (runner.uids)")
        _hand_over(workspace, uid)
    user_kwargs = {"user": uid, "group": uid, "extra_groups": []} if drop_root else {}
    preexec = _rlimit_setter(limits)
    if bwrap is None:
        # Weaker mode: only a process group, a scrubbed environment, rlimits and (as root)
        # an unprivileged uid. The command sees the whole host file system.
        popen = subprocess.Popen(
            list(argv),
            cwd=workspace,
            env={**(env or {}), **sandbox_env(str(workspace))},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,
            preexec_fn=preexec,
            **user_kwargs,
        )
        return Watched(label, popen, process_group_killer(popen))

    info_read, info_write = os.pipe()
    # The command starts only once something is written here: after its network is complete.
    block_read, block_write = os.pipe()
    resolv_read = netns.resolv_conf_pipe() if limits.allow_network else None
    handed = [info_write, block_read] + ([resolv_read] if resolv_read is not None else [])
    try:
        popen = subprocess.Popen(
            bwrap_argv(
                bwrap,
                argv,
                workspace,
                limits,
                info_fd=info_write,
                block_fd=block_read,
                resolv_fd=resolv_read,
                pass_env=bool(env),
            ),
            # bwrap's fork is the sandbox's init, whose environment the command can read: only
            # sandbox_env() and the run's own variables are in it.
            env={**(env or {}), **sandbox_env(WORKSPACE_MOUNT)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,
            pass_fds=tuple(handed),
            preexec_fn=preexec,
            **user_kwargs,
        )
    except BaseException:
        os.close(block_write)
        raise
    finally:
        for fd in handed:
            os.close(fd)
    network = None
    try:
        try:
            init_pid, init_pidfd = _open_sandbox_init(info_read)
        finally:
            os.close(info_read)
        if tools is not None and init_pid is not None:
            network = netns.connect(
                init_pid,
                allowed_private_networks=limits.allowed_private_networks,
                user_kwargs=user_kwargs,
                tools=tools,
            )
    except BaseException:
        # Killed before it is released: bwrap would start the command on end of file too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
        os.close(block_write)
        popen.stdout.close()
        popen.stderr.close()
        raise
    try:
        os.write(block_write, b"1")
    except BrokenPipeError:
        pass  # bwrap has already failed (a process limit, say); its stderr says why
    finally:
        os.close(block_write)
    box = _Sandbox(popen, init_pidfd, network)
    return Watched(label, popen, box.signal_all, box.wait_gone)


def bwrap_argv(
    bwrap: str,
    argv: Sequence[str],
    workspace: Path,
    limits: SandboxLimits,
    *,
    info_fd: int,
    block_fd: int | None = None,
    resolv_fd: int | None = None,
    pass_env: bool = False,
) -> list[str]:
    """pass_env: the command gets bwrap's own (explicit, minimal) environment instead of a cleared
    one; how a run's secrets reach it without appearing in this argv."""
    args = [
        bwrap,
        "--unshare-all",  # the network namespace too, always: see netns.py
        "--unshare-user",
        "--disable-userns",
        "--uid",
        str(INSIDE_UID),
        "--gid",
        str(INSIDE_UID),
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
    ]
    args += ["--ro-bind", "/usr", "/usr"]
    for name in TOP_LEVEL_SYSTEM:
        host = f"/{name}"
        if os.path.islink(host):
            args += ["--symlink", os.readlink(host), host]
        elif os.path.isdir(host):
            args += ["--ro-bind", host, host]
    for name in ETC_ENTRIES:
        host = f"/etc/{name}"
        if os.path.exists(host):
            args += ["--ro-bind", host, host]
    if resolv_fd is not None:
        args += ["--ro-bind-data", str(resolv_fd), "/etc/resolv.conf"]
    args += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    ]
    if limits.tmp_bytes is not None:
        args += ["--size", str(limits.tmp_bytes)]  # applies to the --tmpfs that follows
    args += [
        "--tmpfs",
        "/tmp",
        "--bind",
        str(workspace),
        WORKSPACE_MOUNT,
        "--chdir",
        WORKSPACE_MOUNT,
    ]
    if not pass_env:
        args.append("--clearenv")
    for key, value in sandbox_env(WORKSPACE_MOUNT).items():
        args += ["--setenv", key, value]
    args += ["--info-fd", str(info_fd)]
    if block_fd is not None:
        args += ["--block-fd", str(block_fd)]
    args += ["--", *argv]
    return args


def _rlimit_setter(limits: SandboxLimits) -> Callable[[], None]:
    wanted = [(resource.RLIMIT_CORE, 0, 0)]
    if limits.memory_bytes is not None:
        wanted.append((resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes))
    if limits.max_processes is not None:
        wanted.append((resource.RLIMIT_NPROC, limits.max_processes, limits.max_processes))
    if limits.max_file_size_bytes is not None:
        wanted.append((resource.RLIMIT_FSIZE, limits.max_file_size_bytes, limits.max_file_size_bytes))
    if limits.cpu_seconds is not None:
        # The soft limit sends SIGXCPU, the hard one SIGKILL: a little room to exit cleanly.
        wanted.append((resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 5))

    def set_limits() -> None:
        # Runs in the child between fork and exec (after the uid change): keep it minimal.
        # If the runner dies, bwrap dies with it, and with bwrap the whole sandbox.
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        os.umask(SANDBOX_UMASK)
        for which, soft, hard in wanted:
            resource.setrlimit(which, (soft, hard))

    return set_limits


def _hand_over(workspace: Path, uid: int) -> None:
    """Make the workspace the sandbox uid's own (0700: no other sandbox uid may enter it), and
    check that the uid can reach it."""
    for parent in workspace.parents:
        st = parent.stat()
        if not st.st_mode & stat.S_IXOTH and st.st_uid != uid:
            raise SandboxError(
                f"the sandbox user (uid {uid}) cannot reach the workspace {workspace}: "
                f"{parent} is not searchable by other users; run 'chmod o+x {parent}' "
                "or keep workspaces under a directory that is"
            )
    st = workspace.stat()
    if st.st_uid != uid:
        # A fresh checkout (root's), or a tree of an earlier run's uid: all of it becomes this
        # run's. Not yet handed over means no sandbox has run in it, so nothing races the walk.
        os.lchown(workspace, uid, uid)
        for root, dirs, files in os.walk(workspace):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), uid, uid)
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(workspace, 0o700)


def _open_sandbox_init(info_read: int) -> tuple[int | None, int | None]:
    """Read bwrap's --info-fd report; the sandbox init's pid and a pidfd on it (None, None if gone)."""
    data = b""
    while chunk := os.read(info_read, 4096):
        data += chunk
    if not data:
        return None, None  # bwrap failed before starting the sandbox; its stderr says why
    try:
        pid = json.loads(data)["child-pid"]
        return pid, os.pidfd_open(pid)
    except ProcessLookupError:
        return None, None  # already gone
    except (ValueError, KeyError) as exc:
        raise SandboxError(f"unexpected bwrap --info-fd output: {data[:200]!r}") from exc


class _Sandbox:
    """Kills and waits for one bwrap sandbox through a pidfd on the sandbox's init process.

    Killing that init makes the kernel kill every process of the sandbox's PID namespace at
    once. There is no gentler way in: bwrap's init does not forward SIGTERM. The outer bwrap
    then reaps its child and exits by itself, so no zombie is left behind.
    """

    def __init__(self, popen: subprocess.Popen, init_pidfd: int | None, network: netns.SandboxNetwork | None = None):
        self.kill_group = process_group_killer(popen)
        self.init_pidfd = init_pidfd
        self.network = network

    def signal_all(self, sig: int) -> None:
        if self.init_pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.init_pidfd, signal.SIGKILL)
        if self.init_pidfd is None or sig == signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError):
                self.kill_group(sig)

    def wait_gone(self, timeout: float = 10.0) -> None:
        """Block until the sandbox's init has exited, which the kernel allows only once every
        other process of its PID namespace is gone; then stop its network helper."""
        if self.init_pidfd is None:
            self._close_network()
            return
        try:
            poller = select.poll()
            poller.register(self.init_pidfd, select.POLLIN)
            end = time.monotonic() + timeout
            while not poller.poll(200):
                if time.monotonic() > end:
                    raise SandboxError("sandboxed processes did not exit after SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self.init_pidfd, signal.SIGKILL)
        finally:
            os.close(self.init_pidfd)
            self.init_pidfd = None
            self._close_network()

    def _close_network(self) -> None:
        if self.network is not None:
            network, self.network = self.network, None
            network.close()
