"""Connect a sandbox's own network namespace to the outside world, and to nothing else.

Why not bwrap --share-net: the host's network namespace holds the runner host's loopback, where
Redis, PostgreSQL and the web server listen (and its abstract Unix sockets). A lifecycle command
there could write into the broker or the shared cache of the web server. So every sandbox gets a
network namespace of its own (bwrap --unshare-net, only `lo` inside); when the environment class
allows network, slirp4netns is attached to it. slirp4netns is a user-mode TCP/IP stack: it turns
the sandbox's packets into ordinary sockets of its own process on the host, so the sandbox needs
no bridge, no veth and no firewall rule on the host. It runs with --disable-host-loopback, and
before the command starts the sandbox gets unreachable routes (which a command without
CAP_NET_ADMIN cannot change) for what slirp4netns could otherwise reach from the host:

  - link-local addresses (169.254.169.254, the cloud metadata service, among them), multicast,
    0.0.0.0/8 and 240.0.0.0/4;
  - the private ranges (10/8, 172.16/12, 192.168/16, 100.64/10), except the networks a setting
    (SANDBOX_ALLOWED_PRIVATE_NETWORKS) names;
  - every IPv4 address of the runner host's own interfaces, read when the sandbox starts (a
    public or TEST-NET address is covered by no private range);
  - the slirp subnet 10.0.2.0/24 except its DNS forwarder 10.0.2.3: slirp4netns maps its
    addresses (10.0.2.2, the "host", above all) to the host's loopback, which
    --disable-host-loopback refuses already; the routes make that two locks, not one.

10.0.2.3/32 stays reachable, so the DNS forwarder named in the sandbox's generated
/etc/resolv.conf answers; slirp4netns forwards it to the host's own resolver. IPv6 stays off
(slirp4netns' default).

Order matters, because bwrap starts the command as soon as its --block-fd becomes readable, and
also when it reaches end of file (a runner killed mid-way closes it): the routes are installed
before slirp4netns is started, so a sandbox released early has no network at all rather than
an unfiltered one. The one route that must wait is 10.0.2.2/32: slirp4netns --configure adds
the default route through 10.0.2.2, which the kernel refuses while that address is
unreachable; it is added once slirp4netns is ready (and slirp4netns refuses 10.0.2.2 by itself
with --disable-host-loopback anyway). The gateway still works as the default route's next hop:
the kernel reaches a next hop on its link, without a route lookup.

Namespaces. bwrap creates two user namespaces: an outer one that owns the network namespace and
the sandbox's own one inside it. Both helpers join the outer one (found with NS_GET_USERNS on
the network namespace) and are handed the namespaces as open file descriptors, so a recycled
pid cannot point them at another process. The route helper (nsenter + ip) runs as bwrap's own
uid, which owns those namespaces and so needs no privilege on the host. slirp4netns must open
/dev/net/tun: when the runner is root it runs as root (this device is often root-only) with
--enable-sandbox (its own mount namespace, capabilities dropped) and --enable-seccomp; when the
runner is not root it runs as the runner's user, which needs read-write access to /dev/net/tun
(Debian's default mode 0666), else the sandbox fails with a message that says so.

Lifetime: slirp4netns gets a parent-death signal and an --exit-fd whose other end only the
runner holds, so it ends with the runner; close() stops it when the sandbox has ended.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import ipaddress
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import SandboxError, SandboxUnavailable

SLIRP_SUBNET = ipaddress.ip_network("10.0.2.0/24")
SLIRP_DNS = "10.0.2.3"
# Added once slirp4netns is ready: the subnet but for the DNS forwarder (10.0.2.2 among them).
SLIRP_SUBNET_BLOCKED = tuple(sorted(SLIRP_SUBNET.address_exclude(ipaddress.ip_network(f"{SLIRP_DNS}/32"))))
RESOLV_CONF = f"nameserver {SLIRP_DNS}\n".encode()
TAP_DEVICE = "tap0"
MTU = 65520

# Never reachable from a sandbox, whatever the settings say.
ALWAYS_BLOCKED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "169.254.0.0/16",  # link-local, the cloud metadata service (169.254.169.254)
        "224.0.0.0/4",  # multicast
        "0.0.0.0/8",  # "this network"
        "240.0.0.0/4",  # reserved, and the limited broadcast address
    )
)
# Blocked unless SANDBOX_ALLOWED_PRIVATE_NETWORKS names (part of) them.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)
HELPER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 2.0
NS_GET_USERNS = 0xB701
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)  # loaded here: nothing should be loaded between fork and exec


@dataclass(frozen=True)
class Tools:
    slirp4netns: str
    nsenter: str
    ip: str


def find_tools() -> Tools:
    """The programs a networked sandbox needs; SandboxUnavailable naming the missing ones.

    There is no fallback: without them a class that allows network cannot run at all (sharing
    the host's network namespace instead would expose every service on the runner host)."""
    found = {
        name: shutil.which(name) or shutil.which(name, path=HELPER_ENV["PATH"])
        for name in ("slirp4netns", "nsenter", "ip")
    }
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise SandboxUnavailable(
            f"the environment class allows network, which needs {', '.join(missing)} on the runner host "
            "(apt-get install slirp4netns util-linux iproute2); lifecycle commands with network are not "
            "run without them"
        )
    if os.geteuid() != 0 and not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        raise SandboxUnavailable(
            "the environment class allows network, which needs slirp4netns to open /dev/net/tun, and the "
            f"runner's user (uid {os.geteuid()}) cannot: give /dev/net/tun mode 0666 (Debian's default) or "
            "run the runner as root"
        )
    return Tools(**found)


def parse_allowed_private_networks(items: Iterable[str]) -> tuple[ipaddress.IPv4Network, ...]:
    """Strictly parsed IPv4 networks (no host bits set), each inside one of PRIVATE_NETWORKS.

    ValueError names the offending item. Used by the settings and again by the runner, which
    refuses anything else whoever calls it."""
    networks = []
    for item in items:
        try:
            net = ipaddress.ip_network(item.strip(), strict=True)
        except ValueError as exc:
            raise ValueError(f"{item!r} is not a network in CIDR form such as 10.1.0.0/16 ({exc})") from None
        if net.version != 4:
            raise ValueError(f"{item!r}: sandboxes have no IPv6, so only IPv4 networks can be allowed")
        if not any(net.subnet_of(private) for private in PRIVATE_NETWORKS):
            ranges = ", ".join(str(p) for p in PRIVATE_NETWORKS)
            raise ValueError(f"{item!r} is not inside a private range ({ranges}); only those can be allowed")
        networks.append(net)
    return tuple(networks)


def host_addresses(ip: str) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address of the runner host's interfaces, as `ip -j -4 addr` lists them."""
    result = subprocess.run(
        [ip, "-j", "-4", "addr", "show"], env=HELPER_ENV, capture_output=True, stdin=subprocess.DEVNULL, timeout=10
    )
    try:
        if result.returncode != 0:
            raise ValueError(result.stderr.decode(errors="replace").strip())
        return [
            ipaddress.IPv4Address(info["local"])
            for interface in json.loads(result.stdout)
            for info in interface.get("addr_info", [])
            if info.get("family", "inet") == "inet" and "local" in info
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise SandboxError(f"cannot list the runner host's addresses to keep them from the sandbox: {exc}") from None


def blocked_networks(
    allowed: Sequence[ipaddress.IPv4Network], own_addresses: Iterable[ipaddress.IPv4Address]
) -> list[ipaddress.IPv4Network]:
    """The unreachable routes of a networked sandbox before slirp4netns starts (SLIRP_SUBNET_BLOCKED come later)."""
    private = list(PRIVATE_NETWORKS)
    for hole in allowed:
        remaining = []
        for net in private:
            if net.subnet_of(hole):
                continue
            if hole.subnet_of(net):
                remaining.extend(net.address_exclude(hole))
            else:
                remaining.append(net)
        private = remaining
    hosts = sorted({ipaddress.ip_network(address) for address in own_addresses if not address.is_loopback})
    return [*ALWAYS_BLOCKED, *sorted(private), *hosts]


def resolv_conf_pipe() -> int:
    """A pipe's read end holding the sandbox's /etc/resolv.conf, for bwrap --ro-bind-data."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, RESOLV_CONF)  # far below a pipe's capacity: never blocks
    finally:
        os.close(write_end)
    return read_end


def _die_with_parent() -> None:
    # Runs in the child between fork and exec (after any uid change): keep it minimal.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class SandboxNetwork:
    """slirp4netns attached to one sandbox; close() stops it."""

    def __init__(self, slirp: subprocess.Popen, exit_write: int, log):
        self.slirp, self.exit_write, self.log = slirp, exit_write, log

    def close(self) -> None:
        if self.exit_write is not None:
            os.close(self.exit_write)  # slirp4netns exits when this reaches end of file
            self.exit_write = None
        try:
            self.slirp.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.slirp.kill()
            self.slirp.wait()
        self.log.close()


def connect(
    pid: int,
    *,
    allowed_private_networks: Sequence[str] = (),
    user_kwargs: dict | None = None,
    tools: Tools | None = None,
) -> SandboxNetwork:
    """Give the (still blocked) sandbox whose init is `pid` filtered access to the outside.

    user_kwargs are bwrap's own (user, group, extra_groups), which own its namespaces. Returns
    once the sandbox's network is complete; on any failure the helpers are stopped and
    SandboxError says why, and the caller must kill the sandbox before releasing it."""
    tools = tools or find_tools()
    user_kwargs = user_kwargs or {}
    try:
        allowed = parse_allowed_private_networks(allowed_private_networks)
    except ValueError as exc:
        raise SandboxError(f"allowed private networks: {exc}") from None
    blocked = blocked_networks(allowed, host_addresses(tools.ip))

    net_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        # bwrap's outer user namespace owns the network namespace: joining that one gives
        # CAP_NET_ADMIN over it (the sandbox's own, nested one would not).
        user_fd = fcntl.ioctl(net_fd, NS_GET_USERNS)
        os.set_inheritable(user_fd, False)
    except BaseException:
        os.close(net_fd)
        raise
    try:
        _add_routes(tools, net_fd, user_fd, blocked, user_kwargs)
        network = _start_slirp(tools, net_fd, user_fd, user_kwargs)
        try:
            _add_routes(tools, net_fd, user_fd, SLIRP_SUBNET_BLOCKED, user_kwargs)
        except BaseException:
            network.close()
            raise
        return network
    finally:
        os.close(net_fd)
        os.close(user_fd)


def _add_routes(tools: Tools, net_fd: int, user_fd: int, networks: Sequence, user_kwargs: dict) -> None:
    batch = "".join(f"route add unreachable {net}\n" for net in networks)
    argv = [
        tools.nsenter,
        "--preserve-credentials",
        f"--user=/proc/self/fd/{user_fd}",
        f"--net=/proc/self/fd/{net_fd}",
        tools.ip,
        "-batch",
        "-",
    ]
    result = subprocess.run(
        argv,
        input=batch.encode(),
        env=HELPER_ENV,
        capture_output=True,
        pass_fds=(net_fd, user_fd),
        timeout=10,
        **user_kwargs,
    )
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()[-500:]
        raise SandboxError(f"cannot set up the sandbox's network (routes): {detail}")


def _start_slirp(tools: Tools, net_fd: int, user_fd: int, user_kwargs: dict) -> SandboxNetwork:
    as_root = os.geteuid() == 0
    ready_read, ready_write = os.pipe()
    exit_read, exit_write = os.pipe()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - SandboxNetwork.close() closes it
    argv = [
        tools.slirp4netns,
        "--configure",
        f"--mtu={MTU}",
        "--disable-host-loopback",
        "--enable-seccomp",
        *(["--enable-sandbox"] if as_root else []),
        f"--ready-fd={ready_write}",
        f"--exit-fd={exit_read}",
        f"--userns-path=/proc/self/fd/{user_fd}",
        "--netns-type=path",
        f"/proc/self/fd/{net_fd}",
        TAP_DEVICE,
    ]
    try:
        slirp = subprocess.Popen(
            argv,
            env=HELPER_ENV,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(ready_write, exit_read, net_fd, user_fd),
            start_new_session=True,
            preexec_fn=_die_with_parent,
            # As root it keeps root (for /dev/net/tun) and confines itself (--enable-sandbox).
            **({} if as_root else user_kwargs),
        )
    except BaseException:
        for fd in (ready_read, ready_write, exit_read, exit_write):
            os.close(fd)
        log.close()
        raise
    os.close(ready_write)
    os.close(exit_read)
    network = SandboxNetwork(slirp, exit_write, log)
    try:
        ready, _, _ = select.select([ready_read], [], [], READY_TIMEOUT)
        if not ready or os.read(ready_read, 1) != b"1":
            slirp.kill()
            slirp.wait()
            log.seek(0)
            detail = log.read().decode(errors="replace").strip()[-500:] or "no output"
            raise SandboxError(f"slirp4netns could not connect the sandbox's network: {detail}")
    except BaseException:
        with contextlib.suppress(OSError):
            network.close()
        raise
    finally:
        os.close(ready_read)
    return network
