"""Extra instances of one image cost almost no disk, and each is still its own user namespace:
the image's layers are shared as they are (idmapped mounts, no id-shifted copy per container), a
container's own storage is its upper directory, and root inside is an unprivileged host uid of a
range no other container has."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from runner.podman import userns_options
from tests.processes.containers.conftest import SAMPLE_IMAGE

pytestmark = pytest.mark.slow


def _du(path: str) -> int:
    # -x: a running container's rootfs ("merged") is a mount of its own, not disk of its layer.
    return int(subprocess.run(["du", "-sbx", path], capture_output=True, text=True, check=True).stdout.split()[0])


def test_extra_instances_share_the_image_layers_and_not_their_host_ids(container_host):
    podman = container_host.podman
    podman.run("pull", "--quiet", SAMPLE_IMAGE, timeout=300)
    image_top = podman.run("image", "inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", SAMPLE_IMAGE).stdout
    names = [f"instances-test-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    try:
        for name in names:
            podman.run(
                "run", "-d", "--name", name, *userns_options("org-a"), "--network=none", SAMPLE_IMAGE, "sleep", "300"
            )
        maps, host_uids = set(), set()
        for name in names:
            data = podman.run("inspect", "--format", "{{.GraphDriver.Data.LowerDir}} {{.State.Pid}}", name).stdout
            lower, pid = data.split()
            # The container's lower layer is the image's own layer, not a shifted copy of it.
            assert lower == image_top.strip()
            upper = podman.run("inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", name).stdout.strip()
            assert _du(str(Path(upper).parent)) < 5_000_000
            uid_map = Path(f"/proc/{pid}/uid_map").read_text().split()
            assert uid_map[0] == "0" and uid_map[1] != "0"  # root inside is not root on the host
            maps.add(uid_map[1])
            host_uids.add(Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0])
        assert len(maps) == len(names)  # one organization's containers do not share host ids either
        assert "0" not in host_uids
        # What a container writes lands in its own upper directory, through the shared image.
        podman.run("exec", names[0], "sh", "-c", "echo mine > /usr/local/bin/mine")
        assert podman.run("exec", names[1], "sh", "-c", "test -e /usr/local/bin/mine", check=False).returncode == 1
    finally:
        podman.run("rm", "-f", "-t", "0", *names, check=False)
