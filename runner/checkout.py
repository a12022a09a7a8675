"""Shallow clone of one branch.

The access token for HTTPS is handed to git through the environment only
(GIT_CONFIG_COUNT/KEY/VALUE setting an http.<origin>/.extraHeader), so it is not on any
command line (ps), not in the workspace's .git/config, and it is only sent to the
repository's own origin. Every line passed to on_line has the token (and its base64 form)
replaced with '***'.

A local repository (an absolute path or a file:// URL) is cloned only when a LocalSources policy
admits it: the control plane checks the same policy when a project is saved, and the clone checks
it again on the real path, so a symlink swapped in after the project was saved leads nowhere it
should not. Whatever goes wrong with a local repository (missing, a file, not a repository, not
readable, not admitted), the caller sees one message with no path in it: a failure must not tell
whether a path exists on the runner or what it is.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from ._proc import ShouldStop, Watched, process_group_killer, pump, raise_if_stopped
from .errors import CheckoutError

REDACTED = "***"

# The one message for every failure to clone a local repository (see the module's docstring).
LOCAL_NOT_ACCESSIBLE = "could not clone the repository: not found or not accessible"


def local_path(url: str) -> str | None:
    """The path a local repository URL names (an absolute path, or a file:// URL with no host),
    else None for a remote URL. The path is as written: not resolved, maybe not existing."""
    url = (url or "").strip()
    if url.startswith("/"):
        return url
    parts = urlsplit(url)
    if parts.scheme.lower() == "file":
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            return ""  # local, but not a path this product takes: admitted nowhere
        return unquote(parts.path)
    return None


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # one relative, or different drives
        return False


@dataclass(frozen=True)
class LocalSources:
    """Where local repositories may be cloned from: real (symlink-free) absolute paths.

    A path is admitted when it lies inside one of allowed_roots and inside none of
    forbidden_roots, except that a forbidden root may hold an allowed root an operator named on
    purpose (the demo repository's folder inside the data directory): the admitting root must then
    lie strictly inside the forbidden one. So with "/" allowed, nothing of the data directory is."""

    allowed_roots: tuple[str, ...] = ()
    forbidden_roots: tuple[str, ...] = ()

    @classmethod
    def of(cls, allowed_roots: Iterable, forbidden_roots: Iterable = ()) -> LocalSources:
        return cls(
            tuple(os.path.realpath(str(r)) for r in allowed_roots),
            tuple(os.path.realpath(str(r)) for r in forbidden_roots),
        )

    def admits_real_path(self, real: str) -> bool:
        """Whether a path that is already resolved (os.path.realpath) is admitted."""
        if not os.path.isabs(real):
            return False
        for root in self.allowed_roots:
            if not _inside(real, root):
                continue
            if all(
                not _inside(real, forbidden) or (_inside(root, forbidden) and root != forbidden)
                for forbidden in self.forbidden_roots
            ):
                return True
        return False

    def resolve(self, path: str) -> str | None:
        """The real path of `path` when it is admitted, else None."""
        if not path:
            return None
        real = os.path.realpath(path)
        return real if self.admits_real_path(real) else None

    def resolve_repository(self, path: str) -> str | None:
        """resolve(), and the repository's own git directory and object stores must be admitted
        too: a `.git` file (gitdir: ...), a worktree's commondir or objects/info/alternates could
        otherwise point git at a repository the policy keeps out. None when anything is refused,
        missing or unreadable (the caller cannot tell which)."""
        real = self.resolve(path)
        if real is None:
            return None
        try:
            dot_git = os.path.join(real, ".git")
            if os.path.lexists(dot_git) and not os.path.isdir(dot_git):
                return None  # a gitdir file (or a dangling link): refused rather than followed
            git_dir = dot_git if os.path.isdir(dot_git) else real
            if self.resolve(git_dir) is None or os.path.lexists(os.path.join(git_dir, "commondir")):
                return None
            for store in _alternates(git_dir):
                if self.resolve(store) is None:
                    return None
        except OSError:
            return None
        return real


def _alternates(git_dir: str) -> list[str]:
    objects = os.path.join(git_dir, "objects")
    stores = [objects]
    alternates = os.path.join(objects, "info", "alternates")
    if os.path.lexists(alternates):
        with open(alternates, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    stores.append(os.path.join(objects, line))
    return stores


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
    local_sources: LocalSources | None = None,
) -> str:
    """Clone branch of url into dest (which must not exist) and return the commit id.

    url may be a local path, a file:// URL or an https:// URL. on_line(stream, text) gets
    git's output. A local url is cloned only if local_sources admits it (None: no policy, for
    scripts and tests of this package; the control plane always passes one). Raises
    CheckoutError, or errors.Stopped if stopped or past the deadline.
    """
    dest = Path(dest)
    if dest.exists():
        raise CheckoutError("git clone failed: the workspace already exists")
    source = url
    local = local_path(url)
    if local is not None:
        policy = local_sources if local_sources is not None else LocalSources.of(["/"])
        real = policy.resolve_repository(local)
        if real is None:
            raise CheckoutError(LOCAL_NOT_ACCESSIBLE)
        # The checked real path, not the link that led to it. --no-local: a plain local clone
        # would ignore --depth and hard-link the source's objects into the workspace, where the
        # sandboxed commands could alter them.
        source = real
    secrets = _secrets(access_token)
    # Host paths never reach a log line: git names the source and the workspace as it goes.
    paths = sorted({p for p in (local, source if local is not None else None, str(dest)) if p}, key=len, reverse=True)

    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        for path in paths:
            text = text.replace(path, "<workspace>" if path == str(dest) else "<repository>")
        return text

    lines: list[str] = []
    held: list[tuple[str, str]] = []

    def collect(batch: list[tuple[str, str, str]]) -> None:
        for _, stream, text in batch:
            text = redact(text)
            lines.append(text)
            if local is not None:
                # git's words on a local failure (does not exist, not a repository, permission
                # denied) would tell what the path is: shown only once the clone succeeded.
                held.append((stream, text))
            elif on_line is not None:
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
        if local is not None:
            if re.search(r"Remote branch .* not found", "\n".join(lines)):
                raise CheckoutError(f"git clone failed: branch '{branch}' not found in the repository")
            raise CheckoutError(LOCAL_NOT_ACCESSIBLE)
        raise CheckoutError(_failure_message(lines, branch, public_url(url)))
    if on_line is not None:
        for stream, text in held:
            on_line(stream, text)

    head = subprocess.run(
        ["git", "-C", str(dest), "rev-parse", "HEAD"],
        env=_git_env(url, None),
        capture_output=True,
        text=True,
    )
    if head.returncode != 0:
        raise CheckoutError(f"git clone failed: cannot read the checked out commit: {redact(head.stderr.strip())}")
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
    # Only the transports a project may name: no ext::, ssh or fd:: through a redirect or a URL
    # rewritten by a config file.
    env["GIT_ALLOW_PROTOCOL"] = "file:http:https"
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
