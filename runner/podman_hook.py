"""The OCI hook (createRuntime) that closes a networked container's way to the runner host.

slirp4netns without the host's loopback still turns a container's packets into sockets of the
host: an address of the runner host's own interfaces, a private network beside it or the cloud
metadata service would be reachable. podman runs this hook after it has created the container's
network namespace and before the container's first process starts, so the container never runs
unfiltered: it adds the same unreachable routes the bubblewrap backend adds (runner.netns): the
link-local, multicast and reserved ranges, the private ranges (but SANDBOX_ALLOWED_PRIVATE_NETWORKS),
the host's own addresses, and slirp's own subnet except its DNS forwarder. A process without
CAP_NET_ADMIN in the network namespace's owning user namespace cannot change them, and the
container's root has none there (its user namespace is its own, the network namespace podman's).

Run by podman (runner.podman.python_command: a bare interpreter) with the policy file as its
argument and the container's state on stdin.
A failure stops the container from starting (podman reports the hook's error).
"""

from __future__ import annotations

import json
import subprocess
import sys

from . import netns
from .podman import GuardPolicy


def routes(policy: GuardPolicy) -> list[str]:
    tools = netns.find_tools()
    allowed = netns.parse_allowed_private_networks(policy.allowed_private_networks)
    blocked = netns.blocked_networks(allowed, netns.host_addresses(tools.ip))
    return [str(net) for net in (*blocked, *netns.SLIRP_SUBNET_BLOCKED)]


def main(argv: list[str]) -> int:
    with open(argv[0]) as f:
        policy = GuardPolicy(**json.load(f))
    state = json.load(sys.stdin)
    pid = int(state["pid"])
    batch = "".join(f"route add unreachable {net}\n" for net in routes(policy))
    done = subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-batch", "-"],
        input=batch.encode(),
        env=netns.HELPER_ENV,
        capture_output=True,
        timeout=10,
    )
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip()
        print(f"cannot keep the container from the runner host: {detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
