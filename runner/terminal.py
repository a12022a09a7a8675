"""A shell in a container under a pty, for the environment's terminal: `podman exec -it` as the
devcontainer's remoteUser in its workspace folder, its output read without blocking the event loop,
resized with TIOCSWINSZ, and ended so that nothing of it keeps running in the container.

Plain Python and asyncio (no Django): warmpools' websocket consumer drives it.

Why the marker: killing `podman exec` ends the client only; the shell it started inside the
container (and anything that shell started) lives on in its exec session. So every process of a
session carries TERMINAL_SESSION=<random> in its environment (children inherit it), and the end of
a session kills, as root in the container, every process whose environment holds that marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import signal
import struct
import subprocess
import termios

from runner.podman import Podman

MARKER = "TERMINAL_SESSION"
# bash when the image has it (a login shell, so the user's profile runs), else the POSIX shell.
LOGIN_SHELL = "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec /bin/sh -l; fi"
READ_SIZE = 64 * 1024
START_GRACE = 15  # seconds a session closed at once waits for its shell to start, so it can kill it


def shell_argv(podman: Podman, *, container: str, user: str, workdir: str, marker: str) -> list[str]:
    argv = [podman.binary, "exec", "-it", "--env", "TERM=xterm-256color", "--env", f"{MARKER}={marker}"]
    if user:
        argv += ["-u", user]
    if workdir:
        argv += ["-w", workdir]
    return [*argv, "--", container, "/bin/sh", "-c", LOGIN_SHELL]


def kill_session_argv(podman: Podman, *, container: str, user: str, marker: str) -> list[str]:
    """Every process in the container whose environment carries this session's marker, killed. As
    the session's own user: root in the container lacks CAP_SYS_PTRACE, so it cannot read another
    user's /proc/<pid>/environ, while a user can read its own processes'."""
    needle = f"{MARKER}={marker}"
    script = (
        'for p in /proc/[0-9]*; do tr "\\000" "\\n" < "$p/environ" 2>/dev/null | grep -qx "$1" '
        '&& kill -KILL "${p#/proc/}" 2>/dev/null; done; true'
    )
    return [podman.binary, "exec", "-u", user or "0", "--", container, "/bin/sh", "-c", script, "sh", needle]


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class ContainerShell:
    """One shell session. start() it on the running event loop; read() answers b"" at the end."""

    def __init__(self, podman: Podman, *, container: str, user: str, workdir: str, rows: int = 24, cols: int = 80):
        self.podman = podman
        self.container = container
        self.user = user
        self.marker = secrets.token_hex(16)
        self.argv = shell_argv(podman, container=container, user=user, workdir=workdir, marker=self.marker)
        self.rows, self.cols = rows, cols
        self.process: subprocess.Popen | None = None
        self._master: int | None = None
        self._output: asyncio.Queue[bytes] = asyncio.Queue()
        self._pending = b""
        self._ended = False
        # Set at the first output: the shell is running inside the container (its prompt).
        self._started = asyncio.Event()

    def start(self) -> None:
        self.podman.ensure()  # its containers.conf, which env() names
        master, slave = os.openpty()
        set_size(slave, self.rows, self.cols)
        try:
            # Its own session, so that one signal reaches podman and anything it forks.
            self.process = subprocess.Popen(
                self.argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=self.podman.env(),
                start_new_session=True,
                close_fds=True,
            )
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self._master = master
        asyncio.get_running_loop().add_reader(master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:  # EIO: every holder of the pty's other end is gone (the shell exited)
            data = b""
        if not data:
            self._stop_reading()
        else:
            self._started.set()
        self._output.put_nowait(data)

    def _stop_reading(self) -> None:
        if self._master is not None and not self._ended:
            self._ended = True
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._master)
            loop.remove_writer(self._master)

    async def read(self) -> bytes:
        return await self._output.get()

    def write(self, data: bytes) -> None:
        """Keyboard input; what the pty does not take at once waits for it to be writable."""
        if self._ended or self._master is None:
            return
        self._pending += data
        self._flush()

    def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending and not self._ended:
            try:
                written = os.write(self._master, self._pending)
            except BlockingIOError:
                loop.add_writer(self._master, self._flush)
                return
            except OSError:
                self._pending = b""
                return
            self._pending = self._pending[written:]
        loop.remove_writer(self._master)

    def resize(self, rows: int, cols: int) -> None:
        """The pty's size, and SIGWINCH to podman, which reads it and resizes the container's pty."""
        if self._master is None or self._ended:
            return
        self.rows, self.cols = max(1, min(rows, 1000)), max(1, min(cols, 1000))
        set_size(self._master, self.rows, self.cols)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGWINCH)

    async def exit_code(self) -> int | None:
        if self.process is None:
            return None
        return await asyncio.to_thread(self.process.wait)

    async def close(self) -> None:
        """The session's processes in the container killed, then the podman client; idempotent."""
        process = self.process
        if process is not None and process.poll() is None and not self._started.is_set():
            # Closed before the shell said anything (a page closed at once): its exec may still be
            # starting, and a sweep now would find nothing while the shell starts after it, left
            # running when the client is killed. Wait for it to show, or for the client to end.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._first_output_or_exit(process), timeout=START_GRACE)
        self._stop_reading()
        if process is not None:
            if process.poll() is None:
                await asyncio.to_thread(self._kill_in_container)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait)
        if self._master is not None:
            os.close(self._master)
            self._master = None

    async def _first_output_or_exit(self, process: subprocess.Popen) -> None:
        while not self._started.is_set() and process.poll() is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._started.wait(), timeout=0.1)

    def _kill_in_container(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                kill_session_argv(self.podman, container=self.container, user=self.user, marker=self.marker),
                env=self.podman.env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
            )
