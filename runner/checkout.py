"""Shallow clone of one branch.

The access token for HTTPS is handed to git through the environment only
(GIT_CONFIG_COUNT/KEY/VALUE setting an http.<origin>/.extraHeader), so it is not on any
command line (ps), not in the workspace's .git/config, and it is only sent to the
repository's own origin. Every line passed to on_line has the token (and its base64 form)
replaced with '***'.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ._proc import ShouldStop, Watched, process_group_killer, pump, raise_if_stopped
from .errors import CheckoutError

REDACTED = "***"


def clone(
    url: str,
    branch: str,
    dest: Path,
    *,
    access_token: str | None = None,
    on_line: Callable[[str, str], None] | None = None,
    should_stop: ShouldStop | None = None,
    deadline: float | None = None,
    on_tick: Callable[[], None] | None = None,
) -> str:
    """Clone branch of url into dest (which must not exist) and return the commit id.

    url may be a local path, a file:// URL or an https:// URL. on_line(stream, text) gets
    git's output. Raises CheckoutError, or errors.Stopped if stopped or past the deadline.
    """
    dest = Path(dest)
    if dest.exists():
        raise CheckoutError(f"git clone failed: destination {dest} already exists")
    source = url
    if "://" not in url and not re.match(r"^[\w.-]+@[\w.-]+:", url):
        # --no-local: a plain local clone would ignore --depth and hard-link the source's
        # objects into the workspace, where the sandboxed commands could alter them.
        source = str(Path(url).resolve())
    secrets = _secrets(access_token)

    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        return text

    lines: list[str] = []

    def collect(batch: list[tuple[str, str, str]]) -> None:
        for _, stream, text in batch:
            text = redact(text)
            lines.append(text)
            if on_line is not None:
                on_line(stream, text)

    argv = [
        "git",
        "clone",
        "--depth",
        "1",
        "--single-branch",
        "--branch",
        branch,
        "--no-local",
        "--",
        source,
        str(dest),
    ]
    popen = subprocess.Popen(
        argv,
        env=_git_env(url, access_token),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        # The checkout's modes are git's (0644/0755), not the worker's private umask: the tree is
        # the user's, and its own 0700 top directory keeps it from other users.
        umask=0o022,
    )
    watched = Watched("clone", popen, process_group_killer(popen))
    results = pump([watched], on_lines=collect, should_stop=should_stop, deadline=deadline, on_tick=on_tick)
    raise_if_stopped(results)
    if results["clone"].exit_status != 0:
        raise CheckoutError(_failure_message(lines, branch, public_url(url)))

    head = subprocess.run(
        ["git", "-C", str(dest), "rev-parse", "HEAD"],
        env=_git_env(url, None),
        capture_output=True,
        text=True,
    )
    if head.returncode != 0:
        raise CheckoutError(f"git clone failed: cannot read the checked out commit: {head.stderr.strip()}")
    return head.stdout.strip()


def public_url(url: str) -> str:
    """url without any user name or password, fit for a message."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


def _secrets(access_token: str | None) -> list[str]:
    if not access_token:
        return []
    return [_basic_auth(access_token), access_token]


def _basic_auth(access_token: str) -> str:
    return base64.b64encode(f"x-access-token:{access_token}".encode()).decode()


def _git_env(url: str, access_token: str | None) -> dict[str, str]:
    # Drop inherited GIT_* variables: tracing (GIT_TRACE, GIT_CURL_VERBOSE) would log the header.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="/bin/false", SSH_ASKPASS="/bin/false", LC_ALL="C")
    if access_token:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise CheckoutError("git clone failed: an access token can only be used with an https:// URL")
        origin = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/"
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0=f"http.{origin}.extraHeader",
            GIT_CONFIG_VALUE_0=f"Authorization: Basic {_basic_auth(access_token)}",
        )
    return env


def _failure_message(lines: list[str], branch: str, url: str) -> str:
    text = "\n".join(lines)
    if re.search(r"Remote branch .* not found", text):
        return f"git clone failed: branch '{branch}' not found in {url}"
    if "does not appear to be a git repository" in text or "Repository not found" in text:
        return f"git clone failed: repository {url} not found or not accessible"
    if "Authentication failed" in text or "could not read Username" in text or "403" in text:
        return f"git clone failed: access to {url} was denied (check the access token)"
    fatal = [line.removeprefix("fatal: ") for line in lines if line.startswith("fatal:")]
    reason = fatal[-1] if fatal else (lines[-1] if lines else "no output")
    return f"git clone failed: {reason}"
