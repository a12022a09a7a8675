"""Attack: from a lifecycle command, reach the services of the runner host.

Redis, PostgreSQL and the web server listen on the runner host's loopback (a Redis reachable from
a sandbox lets the command write into the broker and the web server's cache). The test opens
listeners that stand for them (on their real ports when those are free), one on the host's own
non-loopback address and one on the wildcard address, and a lifecycle command in a class that
allows network tries every way there: 127.0.0.1, slirp's host alias 10.0.2.2 and the host's
address, plus the cloud metadata address 169.254.169.254. All must fail, and no listener may see
a connection, while the sandbox still has an interface, a default route and a resolver of its
own. A class without network has nothing but its own loopback.

No probe goes to a public address: "egress to the outside" is checked as configuration (an
interface, a default route, a nameserver), never by connecting. The metadata address is only
tried once the sandbox's own routing table says it is unreachable.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import socket
import subprocess
from pathlib import Path

import pytest

from runner.sandbox import SandboxLimits, find_bwrap, run_sandboxed

pytestmark = pytest.mark.skipif(find_bwrap() is None, reason="bubblewrap (bwrap) is not installed")

METADATA = ("169.254.169.254", 80)
SLIRP_HOST_ALIAS = "10.0.2.2"
SERVICE_PORTS = {"redis": 6379, "postgresql": 5432, "web": 8000}

PROBE = r"""
import json, socket, struct, sys

def routes():
    rows = open("/proc/net/route").read().splitlines()[1:]
    return [(int(f[1], 16), int(f[7], 16), int(f[3], 16)) for f in (row.split() for row in rows)]

def route_rejects(address):
    # The most specific route of the main table; RTF_REJECT (0x200) marks an unreachable one.
    number = struct.unpack("<I", socket.inet_aton(address))[0]
    matching = [(bin(mask).count("1"), flags) for dest, mask, flags in routes() if number & mask == dest]
    return not matching or bool(max(matching)[1] & 0x200)

def attempt(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "connected"
    except OSError as exc:
        return f"failed: {exc}"

request = json.loads(sys.argv[1])
report = {"attempts": {}}
for host, port in request["targets"]:
    report["attempts"][f"{host}:{port}"] = attempt(host, port)
host, port = request["guarded"]
if route_rejects(host):
    report["attempts"][f"{host}:{port}"] = attempt(host, port)
else:
    report["attempts"][f"{host}:{port}"] = "not tried: a route leads there"
report["interfaces"] = sorted(name for _, name in socket.if_nameindex())
report["default_route"] = any(dest == 0 and mask == 0 and not flags & 0x200 for dest, mask, flags in routes())
try:
    report["resolv_conf"] = open("/etc/resolv.conf").read()
except OSError:
    report["resolv_conf"] = None
print("PROBE " + json.dumps(report))
"""


def host_address() -> str:
    """The runner host's first non-loopback IPv4 address (192.0.2.2 on the lead's machine)."""
    interfaces = json.loads(subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, check=True).stdout)
    addresses = [
        info["local"]
        for interface in interfaces
        for info in interface.get("addr_info", [])
        if not ipaddress.ip_address(info["local"]).is_loopback
    ]
    if not addresses:
        pytest.skip("the host has no non-loopback IPv4 address to listen on")
    return addresses[0]


def host_nameservers() -> set[str]:
    with contextlib.suppress(OSError):
        text = Path("/etc/resolv.conf").read_text()
        return {f[1] for f in map(str.split, text.splitlines()) if f[:1] == ["nameserver"] and f[1:]}
    return set()


def listen(address: str, port: int = 0) -> socket.socket:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen(16)
    server.setblocking(False)
    return server


def saw_connection(server: socket.socket) -> bool:
    # A connection whose handshake completed waits in the accept queue, even if already closed.
    try:
        conn, _ = server.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


@pytest.fixture
def listeners(capsys):
    """{name: (socket, [addresses to try from the sandbox])}; services on their real ports if free."""
    opened: dict[str, tuple[socket.socket, list[tuple[str, int]]]] = {}
    host = host_address()
    try:
        for name, port in SERVICE_PORTS.items():
            try:
                server = listen("127.0.0.1", port)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                server = listen("127.0.0.1")  # the real port is taken: a stand-in on another one
                with capsys.disabled():
                    print(f"\n[{name}] 127.0.0.1:{port} is in use; listening on {server.getsockname()[1]} instead")
            port = server.getsockname()[1]
            opened[name] = (server, [("127.0.0.1", port), (SLIRP_HOST_ALIAS, port)])
        server = listen(host)
        opened["host address"] = (server, [(host, server.getsockname()[1])])
        server = listen("0.0.0.0")
        port = server.getsockname()[1]
        opened["wildcard"] = (server, [("127.0.0.1", port), (SLIRP_HOST_ALIAS, port), (host, port)])
        yield opened
    finally:
        for server, _ in opened.values():
            server.close()


def run_probe(workspace: Path, limits: SandboxLimits, targets: list, guarded=METADATA) -> dict:
    lines = []
    result = run_sandboxed(
        ["python3", "-c", PROBE, json.dumps({"targets": targets, "guarded": guarded})],
        workspace=workspace,
        limits=limits,
        on_line=lambda stream, text: lines.append(text),
    )
    assert result.exit_status == 0, lines
    [report] = [line.removeprefix("PROBE ") for line in lines if line.startswith("PROBE ")]
    return json.loads(report)


def test_networked_sandbox_reaches_no_service_of_the_runner_host(workspace, listeners):
    targets = [target for _, addresses in listeners.values() for target in addresses]
    report = run_probe(workspace, SandboxLimits(allow_network=True), targets)

    attempts = report["attempts"]
    assert set(attempts) == {f"{h}:{p}" for h, p in [*targets, METADATA]}
    assert [target for target, outcome in attempts.items() if not outcome.startswith("failed")] == []
    assert [name for name, (server, _) in listeners.items() if saw_connection(server)] == []
    # Still a network to the outside: an interface besides lo, a default route, its own resolver.
    assert [name for name in report["interfaces"] if name != "lo"] != []
    assert report["default_route"] is True
    nameservers = {line.split()[1] for line in report["resolv_conf"].splitlines() if line.startswith("nameserver ")}
    assert nameservers and not nameservers & host_nameservers()


def test_sandbox_without_network_has_only_its_own_loopback(workspace, listeners):
    server, addresses = listeners["wildcard"]
    report = run_probe(workspace, SandboxLimits(allow_network=False), addresses)
    assert report["interfaces"] == ["lo"]
    assert report["default_route"] is False
    assert all(outcome.startswith("failed") for outcome in report["attempts"].values())
    assert not saw_connection(server)
    # Not even the host's resolver configuration is shown.
    assert report["resolv_conf"] is None or not host_nameservers() & set(report["resolv_conf"].split())


def test_allowed_private_network_is_the_only_hole(workspace):
    # A listed private network becomes routable (through slirp's gateway); the rest of its range,
    # the host's addresses and the metadata service stay unreachable. Only routes are inspected.
    probe = (
        "import subprocess\n"
        "for a in ['10.1.2.3', '10.2.0.1', '192.168.1.1', '169.254.169.254']:\n"
        "    r = subprocess.run(['ip', 'route', 'get', a], capture_output=True, text=True)\n"
        "    print(a, 'unreachable' if r.returncode or 'unreachable' in r.stdout else 'routed')\n"
    )
    lines = []
    result = run_sandboxed(
        ["python3", "-c", probe],
        workspace=workspace,
        limits=SandboxLimits(allow_network=True, allowed_private_networks=("10.1.0.0/16",)),
        on_line=lambda stream, text: lines.append(text),
    )
    assert result.exit_status == 0, lines
    assert lines == [
        "10.1.2.3 routed",
        "10.2.0.1 unreachable",
        "192.168.1.1 unreachable",
        "169.254.169.254 unreachable",
    ]
