"""Images and the embedded registry, made from Debian packages only (no image downloads).

build_base_image(): a Debian root file system from Debian's package archive (mmdebstrap), imported
into podman as an image like mcr.microsoft.com/devcontainers/base: bash, git, python3, a `vscode`
user (uid 1000) with passwordless sudo. It is what `make run`'s demo project starts from, and
what the tests put behind a registry mirror for the sample repositories' image name. A user with
internet access names any public image in devcontainer.json instead.

EmbeddedRegistry: Debian's docker-registry (the CNCF Distribution server) under the data
directory, on loopback: the container backend's snapshot store when no other is configured.
"""

from __future__ import annotations

import contextlib
import fcntl
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import SandboxError
from .podman import Podman

BASE_IMAGE = "localhost/prebuilds/devcontainer-base:bookworm"
BASE_PACKAGES = ("ca-certificates", "git", "python3", "procps", "passwd", "sudo", "less", "curl")
# What the image says about itself: a file only the image has (the runner host has none).
IMAGE_STAMP = "/etc/prebuilds-base-image"


def build_rootfs(dest: Path, *, suite: str = "bookworm", mirror: str | None = None) -> Path:
    """A root file system tarball from Debian packages (20-40 s)."""
    if shutil.which("mmdebstrap") is None:
        raise SandboxError("mmdebstrap is not installed: apt-get install mmdebstrap")
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(dest.name + ".partial.tar")
    command = [
        "mmdebstrap",
        "--quiet",
        "--variant=minbase",
        "--format=tar",
        f"--include={','.join(BASE_PACKAGES)}",
        '--customize-hook=chroot "$1" useradd -m -u 1000 -s /bin/bash vscode',
        "--customize-hook=echo 'vscode ALL=(ALL) NOPASSWD:ALL' > \"$1/etc/sudoers.d/vscode\"",
        f"--customize-hook=echo 'prebuilds devcontainer base image, Debian {suite}' > \"$1{IMAGE_STAMP}\"",
        suite,
        str(temp),
        *([mirror] if mirror else []),
    ]
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1800)
    if done.returncode != 0:
        temp.unlink(missing_ok=True)
        raise SandboxError(f"mmdebstrap failed: {done.stderr.strip().splitlines()[-1:]}")
    temp.replace(dest)
    return dest


def image_exists(podman: Podman, name: str) -> bool:
    return podman.run("image", "exists", name, check=False).returncode == 0


def build_base_image(podman: Podman, cache: Path, name: str = BASE_IMAGE) -> str:
    """The base image in podman's storage (built once: the root file system is kept in cache)."""
    if image_exists(podman, name):
        return name
    rootfs = cache / "devcontainer-base-rootfs.tar"
    if not rootfs.exists():
        build_rootfs(rootfs)
    podman.run(
        "import",
        "--change",
        'CMD ["/bin/bash"]',
        "--change",
        "ENV LANG=C.UTF-8",
        str(rootfs),
        name,
        timeout=600,
    )
    return name


def push_image(podman: Podman, name: str, destination: str, *, tls_verify: bool = False) -> None:
    podman.run("push", "--quiet", f"--tls-verify={'true' if tls_verify else 'false'}", name, destination, timeout=600)


@dataclass
class EmbeddedRegistry:
    """docker-registry serving root/data on 127.0.0.1:port."""

    root: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def config(self) -> str:
        return (
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n  delete:\n    enabled: true\n"
            # A secret of its own (docker-registry otherwise makes one up and warns at every start).
            f"http:\n  addr: {self.address}\n  secret: {secrets.token_hex(16)}\n"
        )

    @property
    def maintenance_lock(self) -> Path:
        return self.root / "maintenance.lock"

    @property
    def supervisor_pid_file(self) -> Path:
        """Where `manage.py embedded_registry` says which process runs this registry."""
        return self.root / "supervisor.pid"

    def running(self) -> bool:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1) as response:
            return response.status == 200
        return False

    def start(self, log: Path | None = None, timeout: float = 20) -> EmbeddedRegistry:
        if shutil.which("docker-registry") is None:
            raise SandboxError("docker-registry is not installed: apt-get install docker-registry")
        if self.running():
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(self.config())
        config.chmod(0o600)
        out = open(log or self.root / "registry.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=out, stderr=out, stdin=subprocess.DEVNULL
        )
        out.close()
        deadline = time.monotonic() + timeout
        while not self.running():
            if self.process.poll() is not None:
                raise SandboxError(f"docker-registry exited with {self.process.returncode}: see {self.root}")
            if time.monotonic() > deadline:
                self.stop()
                raise SandboxError(f"docker-registry did not answer on {self.address} within {timeout:.0f} s")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def collect_garbage(self, timeout: float = 600) -> str:
        """Free the blobs no manifest references any more (a deleted prebuild's own layers), keep
        the ones another snapshot still uses. docker-registry's garbage-collect must not run beside
        a registry that accepts writes (a blob pushed meanwhile, not yet in a manifest, would be
        taken), so this stops the registry this object runs, collects, and starts it again; a
        push or delete through a Registry with this maintenance_lock waits for the collection, and
        the collection for those under way; a pull in the window (a few seconds) is refused. Returns
        the tool's summary."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.maintenance_lock, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            was_running = self.process is not None and self.process.poll() is None
            self.stop()
            config = self.root / "config.yml"
            config.write_text(self.config())
            config.chmod(0o600)
            try:
                done = subprocess.run(
                    ["docker-registry", "garbage-collect", str(config), "--delete-untagged"],
                    capture_output=True,
                    text=True,
                    stdin=subprocess.DEVNULL,
                    timeout=timeout,
                )
            finally:
                if was_running:
                    self.start()
            if done.returncode != 0:
                raise SandboxError(f"docker-registry garbage-collect failed: {_last_line(done.stderr + done.stdout)}")
            return _last_line(done.stdout)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
