"""Supervise child processes from the calling thread.

All callbacks (output, should_stop, tick) run on the thread that called pump(), never on a
helper thread: the Django side may touch the database in them, and Django connections are
per thread. Several processes can be pumped together, which is how named lifecycle
commands run in parallel without one thread per command.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import Stopped, StopReason

# (label, stream, text); label tells apart processes pumped together.
Line = tuple[str, str, str]
OnLines = Callable[[list[Line]], None]
ShouldStop = Callable[[], "str | None"]

READ_SIZE = 1 << 20
PIPE_SIZE = 1 << 20
# A line longer than this is delivered in pieces, so a program printing megabytes
# without a newline cannot make us buffer without bound.
MAX_LINE = 64 * 1024
POLL_INTERVAL = 0.4
SELECT_TIMEOUT = 0.1
KILL_GRACE = 1.0
# After a process exits, how long its pipes may stay open and quiet (held by a child it left
# behind) before we kill its group and stop listening.
ORPHAN_GRACE = 2.0


@dataclass
class Watched:
    """A started process whose stdout and stderr are pipes."""

    label: str
    popen: subprocess.Popen
    # Sends a signal to everything the process started, not only to the process itself.
    signal_all: Callable[[int], None]
    # Called once the process has exited: returns only when nothing it started is left.
    wait_gone: Callable[[], None] = lambda: None
    stopped_reason: str | None = None
    exited_at: float | None = None
    last_output_at: float = 0.0
    _tails: dict[str, bytearray] = field(default_factory=dict)


@dataclass(frozen=True)
class Finished:
    exit_status: int | None
    stopped_reason: str | None


def enlarge_pipe(fd: int) -> None:
    # A bigger pipe lets a chatty program write ahead while we are busy delivering a batch.
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


def _split(w: Watched, stream: str, data: bytes, out: list[Line]) -> None:
    tail = w._tails.setdefault(stream, bytearray())
    tail += data
    end = tail.rfind(b"\n")
    if end >= 0:
        # Decoding complete lines at once is safe: b"\n" never occurs inside a UTF-8 sequence.
        text = tail[:end].decode("utf-8", errors="replace")
        del tail[: end + 1]
        out.extend((w.label, stream, line) for line in text.split("\n"))
    while len(tail) > MAX_LINE:
        out.append((w.label, stream, tail[:MAX_LINE].decode("utf-8", errors="replace")))
        del tail[:MAX_LINE]


def _flush(w: Watched, stream: str, out: list[Line]) -> None:
    tail = w._tails.pop(stream, None)
    if tail:
        out.append((w.label, stream, tail.decode("utf-8", errors="replace")))


def _signal(w: Watched, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        w.signal_all(sig)


def pump(
    watched: list[Watched],
    *,
    on_lines: OnLines,
    should_stop: ShouldStop | None = None,
    deadline: float | None = None,
    on_tick: Callable[[], None] | None = None,
) -> dict[str, Finished]:
    """Stream output of the processes until all have exited and nothing they started is left.

    Stops every process (SIGTERM, then SIGKILL after KILL_GRACE) when should_stop() returns
    a reason or the deadline (time.monotonic()) passes. If a callback raises, the processes
    are killed before the exception propagates.
    """
    sel = selectors.DefaultSelector()
    streams: dict[int, tuple[Watched, str]] = {}
    for w in watched:
        for stream, pipe in (("stdout", w.popen.stdout), ("stderr", w.popen.stderr)):
            if pipe is None:
                continue  # not a pipe (the caller reads that stream some other way)
            fd = pipe.fileno()
            os.set_blocking(fd, False)
            enlarge_pipe(fd)
            sel.register(fd, selectors.EVENT_READ)
            streams[fd] = (w, stream)

    stop_reason: str | None = None
    term_sent_at: float | None = None
    killed = False
    next_poll = 0.0
    try:
        while sel.get_map() or any(w.popen.poll() is None for w in watched):
            batch: list[Line] = []
            for key, _ in sel.select(timeout=SELECT_TIMEOUT if sel.get_map() else 0):
                w, stream = streams[key.fd]
                try:
                    data = os.read(key.fd, READ_SIZE)
                except BlockingIOError:
                    continue
                if data:
                    w.last_output_at = time.monotonic()
                    _split(w, stream, data, batch)
                else:
                    sel.unregister(key.fd)
                    _flush(w, stream, batch)
            if not sel.get_map():
                time.sleep(SELECT_TIMEOUT)  # only waiting for exit now: don't spin

            now = time.monotonic()
            for w in watched:
                if w.exited_at is None and w.popen.poll() is not None:
                    w.exited_at = now
                elif w.exited_at is not None and now - max(w.exited_at, w.last_output_at) > ORPHAN_GRACE:
                    # Quiet for that long since it exited (a backlog of output still being read
                    # is no orphan: a busy runner can take seconds over what a chatty command wrote).
                    _abandon(w, sel, streams, batch)
            if stop_reason is None:
                reason = None
                if deadline is not None and now >= deadline:
                    reason = StopReason.TIMEOUT
                elif now >= next_poll:
                    next_poll = now + POLL_INTERVAL
                    if on_tick is not None:
                        on_tick()
                    if should_stop is not None:
                        reason = should_stop() or None
                if reason:
                    stop_reason, term_sent_at = reason, now
                    for w in watched:
                        if w.popen.poll() is None:
                            w.stopped_reason = reason
                            _signal(w, signal.SIGTERM)
            elif not killed and now - term_sent_at >= KILL_GRACE:
                killed = True
                for w in watched:
                    if w.popen.poll() is None:
                        _signal(w, signal.SIGKILL)
            if batch:
                on_lines(batch)
    finally:
        for w in watched:
            if w.popen.poll() is None:
                _signal(w, signal.SIGKILL)
                w.popen.wait()
        for w in watched:
            w.wait_gone()
        for fd in list(sel.get_map()):
            sel.unregister(fd)
        sel.close()
        for w in watched:
            for pipe in (w.popen.stdout, w.popen.stderr):
                if pipe is not None:
                    pipe.close()
    return {w.label: Finished(w.popen.returncode, w.stopped_reason) for w in watched}


def _abandon(w: Watched, sel: selectors.BaseSelector, streams: dict, batch: list[Line]) -> None:
    # Something the process started still holds its pipes: kill the group, take what is still in
    # the pipes, and stop listening.
    _signal(w, signal.SIGKILL)
    for fd, (owner, stream) in streams.items():
        if owner is w and fd in sel.get_map():
            with contextlib.suppress(BlockingIOError, OSError):
                while data := os.read(fd, READ_SIZE):
                    _split(w, stream, data, batch)
            sel.unregister(fd)
            _flush(w, stream, batch)


def raise_if_stopped(results: dict[str, Finished]) -> None:
    for finished in results.values():
        if finished.stopped_reason:
            raise Stopped(finished.stopped_reason)


def process_group_killer(popen: subprocess.Popen) -> Callable[[int], None]:
    """signal_all for a process started with start_new_session=True (it leads its own group)."""
    return lambda sig: os.killpg(popen.pid, sig)
