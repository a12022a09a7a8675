"""What a repository may ask of the container engine: devcontainer.json is hostile input on a
shared runner.

Two layers, both plain functions with no engine needed to test them:

- vet_config(data) drops the keys of a parsed devcontainer.json that would widen the container's
  access to the runner host (initializeCommand, privileged, capAdd, widening runArgs, host bind
  mounts, compose files, ...) and lists each one it dropped, so the prebuild's warning_message can
  name them. The container backend (issue 13) hands the vetted configuration to the Dev Containers
  CLI instead of the repository's own file.
- vet_podman_argv(argv, workspace=...) is the last word: the backend runs the CLI with
  `--docker-path` pointing at a wrapper that calls it on every argument vector before exec'ing
  podman. The CLI merges settings from places vet_config never sees (features' own metadata can ask
  for privileged, capAdd, securityOpt, mounts and entrypoints; so can an image's
  devcontainer.metadata label), and a future CLI version may pass new options, so this check is an
  allow-list of subcommands and of their options: whatever it does not know is refused.

Neither function is called by the bubblewrap backend. The wrapper adds its own global options
(storage, runtime, cgroup manager) after vetting: the vector it vets carries none.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from .errors import ArgumentRefused

# --------------------------------------------------------------------------------------------
# Shared option parsing (podman's pflag rules: --name=value or --name value for options with a
# value, booleans only as --name or --name=bool; short flags combine, -it, and a short option
# with a value takes the rest of its token, -vX, -v=X, or the next argument).


@dataclass(frozen=True)
class _Ctx:
    workspace: str | None  # realpath; None: no host path may be bound (vet_config)
    read_roots: tuple[str, ...]  # realpaths a build may read from (the workspace first)
    volumes_prefix: str | None


# A check gets the option's value and returns why it is refused, or None.
Check = Callable[[str, _Ctx], "str | None"]


@dataclass(frozen=True)
class Opt:
    value: bool = False  # takes a value
    check: Check | None = None


@dataclass(frozen=True)
class _Token:
    raw: str  # the argument(s) as written, for messages: "--volume /:/h" or "-v=/:/h"
    name: str | None  # canonical long name, None for a positional
    value: str | None
    consumed: int  # how many argv entries the token spans
    error: str | None = None


def _tokens(
    args: Sequence[str], opts: dict[str, Opt], shorts: dict[str, str], *, interspersed: bool
) -> Iterator[_Token]:
    """Each option and positional in turn. Without interspersed, the first positional ends the
    options (podman run IMAGE CMD...: CMD's own flags are not podman's)."""
    i = 0
    positional_only = False
    while i < len(args):
        arg = args[i]
        if positional_only or arg == "-" or not arg.startswith("-"):
            yield _Token(arg, None, None, 1)
            if not interspersed:
                positional_only = True
            i += 1
        elif arg == "--":
            positional_only = True
            i += 1
        elif arg.startswith("--"):
            name, eq, inline = arg.partition("=")
            opt = opts.get(name)
            if opt is None:
                yield _Token(arg, name, None, 1, error="not on the allow-list")
                i += 1
            elif opt.value and not eq:
                if i + 1 >= len(args):
                    yield _Token(arg, name, None, 1, error="has no value")
                    i += 1
                else:
                    yield _Token(f"{arg} {args[i + 1]}", name, args[i + 1], 2)
                    i += 2
            elif not opt.value and eq and inline not in ("true", "false"):
                yield _Token(arg, name, None, 1, error="takes no value")
                i += 1
            else:
                yield _Token(arg, name, inline if opt.value else (inline or "true"), 1)
                i += 1
        else:
            # A group of short flags; the first one that takes a value ends the group.
            group = arg[1:]
            tokens: list[_Token] = []
            consumed = 1
            for j, char in enumerate(group):
                name = shorts.get("-" + char)
                if name is None:
                    tokens = [_Token(arg, "-" + char, None, 1, error="not on the allow-list")]
                    break
                if not opts[name].value:
                    tokens.append(_Token(arg, name, "true", 1))
                    continue
                rest = group[j + 1 :]
                if rest:
                    tokens.append(_Token(arg, name, rest.removeprefix("="), 1))
                elif i + 1 < len(args):
                    tokens.append(_Token(f"{arg} {args[i + 1]}", name, args[i + 1], 2))
                    consumed = 2
                else:
                    tokens.append(_Token(arg, name, None, 1, error="has no value"))
                break
            for token in tokens:
                yield _Token(token.raw, token.name, token.value, consumed, token.error)
            i += consumed


def _refusal(token: _Token, opts: dict[str, Opt], ctx: _Ctx) -> str | None:
    if token.error:
        return token.error
    opt = opts[token.name]
    if opt.check is None:
        return None
    return opt.check(token.value or "", ctx)


# --------------------------------------------------------------------------------------------
# Checks of option values


def _within(path: str, roots: Sequence[str]) -> bool:
    # realpath: a symlink in the workspace pointing at / must not pass as the workspace.
    real = os.path.realpath(path)
    return any(real == root or real.startswith(root.rstrip("/") + "/") for root in roots)


def _host_path(path: str, roots: Sequence[str]) -> str | None:
    if not roots:
        return "binds a host path"
    if not path.startswith("/"):
        return "a relative host path"
    if not _within(path, roots):
        return "a host path outside the workspace"
    return None


# A named volume, as podman spells one; anything else in a source position is a host path.
_VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _volume_name(name: str, ctx: _Ctx) -> str | None:
    if not _VOLUME_NAME.fullmatch(name):
        return "not a volume name"
    if ctx.volumes_prefix is not None and not name.startswith(ctx.volumes_prefix):
        # Another prebuild's or another tenant's volume.
        return f"a volume not named {ctx.volumes_prefix}*"
    return None


def _binds(ctx: _Ctx) -> tuple[str, ...]:
    return (ctx.workspace,) if ctx.workspace is not None else ()


def _source(source: str, ctx: _Ctx) -> str | None:
    """A bind source must be the workspace (or inside it); anything else must be a volume name."""
    if source.startswith(("/", ".", "~")):
        return _host_path(source, _binds(ctx))
    return _volume_name(source, ctx)


# -v SRC:DST[:OPTIONS] options. Left out on purpose: dev and suid (device nodes and setuid
# binaries through the workspace), U (chowns host files), O (an overlay over a host directory),
# shared/slave propagation (mounts flowing back to the host).
_VOLUME_OPTIONS = frozenset(
    [
        "ro",
        "rw",
        "z",
        "Z",
        "nocopy",
        "copy",
        "private",
        "rprivate",
        "cached",
        "consistent",
        "delegated",
        "noexec",
        "nosuid",
        "nodev",
        "exec",
    ]
)


def _check_volume(value: str, ctx: _Ctx) -> str | None:
    parts = value.split(":")
    if len(parts) == 1:
        return None  # an anonymous volume at that path
    if len(parts) > 3:
        return "not SRC:DST[:OPTIONS]"
    if len(parts) == 3:
        bad = [o for o in parts[2].split(",") if o not in _VOLUME_OPTIONS]
        if bad:
            return f"mount option {bad[0]} is not allowed"
    return _source(parts[0], ctx)


# --mount keys. Left out on purpose: volume-opt (type=none,o=bind,device=/ makes a "volume" a bind
# of any host path), bind-propagation, U, relabel; type=image (another image's files, another
# prebuild's snapshot among them), devpts, glob, ramfs.
_MOUNT_KEYS = frozenset(
    [
        "type",
        "source",
        "src",
        "target",
        "dst",
        "destination",
        "readonly",
        "ro",
        "consistency",
        "volume-nocopy",
        "tmpfs-size",
        "tmpfs-mode",
    ]
)


def parse_mount(value: str) -> dict[str, str] | str:
    """A --mount value as a dict, or why it cannot be read unambiguously."""
    if '"' in value or "'" in value:
        # podman reads the value as CSV: a quoted field could hide a comma from a naive split.
        return "quotes are not allowed"
    fields: dict[str, str] = {}
    for item in value.split(","):
        key, _, val = item.partition("=")
        key = key.strip().lower()
        if key in fields:
            return f"{key} given twice"
        fields[key] = val.strip()
    for long, short in (("source", "src"), ("target", "dst"), ("readonly", "ro")):
        if short in fields:
            if long in fields:
                return f"{long} given twice"
            fields[long] = fields.pop(short)
    if "destination" in fields:
        if "target" in fields:
            return "target given twice"
        fields["target"] = fields.pop("destination")
    return fields


def _check_mount(value: str, ctx: _Ctx) -> str | None:
    fields = parse_mount(value)
    if isinstance(fields, str):
        return fields
    bad = [k for k in fields if k not in _MOUNT_KEYS]
    if bad:
        return f"mount option {bad[0]} is not allowed"
    kind = fields.get("type", "volume")
    if kind == "tmpfs":
        return "a tmpfs has no source" if "source" in fields else None
    if kind == "bind":
        return _host_path(fields.get("source", ""), _binds(ctx))
    if kind == "volume":
        return _volume_name(fields["source"], ctx) if fields.get("source") else None
    return f"mount type {kind} is not allowed"


def _one_of(*allowed: str, why: str) -> Check:
    def check(value: str, ctx: _Ctx) -> str | None:
        return None if value in allowed else why

    return check


_HOST_NS = "joins a namespace other than its own (the host's or another container's)"


def _check_security_opt(value: str, ctx: _Ctx) -> str | None:
    # Only what the CLI and the runner add themselves. label=disable: the CLI passes it on podman
    # for Linux (without it an SELinux host denies the workspace bind); it changes nothing on a
    # host without SELinux. no-new-privileges only narrows. seccomp=, apparmor=, unmask=,
    # systempaths=, proc-opts= all widen and are refused.
    if value in ("label=disable", "no-new-privileges", "no-new-privileges=true", "no-new-privileges:true"):
        return None
    return "widens the container's privileges"


def _check_userns(value: str, ctx: _Ctx) -> str | None:
    # auto: a fresh range of subordinate ids, so root inside is nobody on the host. host, keep-id
    # (the runner's own uid inside), nomap, container:, ns: and explicit mappings are refused.
    if value == "auto" or re.fullmatch(r"auto:size=\d+", value):
        return None
    return "must be auto: anything else can make the container's root an id of the host"


def _check_network(value: str, ctx: _Ctx) -> str | None:
    # none, or egress through slirp4netns without the host's loopback. bridge (podman's default
    # when rootful) reaches the host through its gateway address; pasta maps the host to its
    # gateway by default; host, container:, ns: and named networks share what is not the
    # container's own.
    if value == "none" or value == "slirp4netns":
        return None
    if value.startswith("slirp4netns:"):
        for item in value.removeprefix("slirp4netns:").split(","):
            key, _, val = item.partition("=")
            if key == "allow_host_loopback" and val != "false":
                return "reaches the runner host's loopback"
            if key not in ("allow_host_loopback", "enable_ipv6", "mtu", "port_handler"):
                return f"slirp4netns option {key} is not allowed"
        return None
    return "only none or slirp4netns: any other network reaches the runner host or another container"


def _check_env(value: str, ctx: _Ctx) -> str | None:
    # -e NAME (no =) and -e 'NAME*' copy the value from the caller's environment: the runner's.
    if "=" not in value or value.split("=", 1)[0].endswith("*"):
        return "copies a variable from the runner host's environment"
    return None


def _check_build_path(value: str, ctx: _Ctx) -> str | None:
    return _host_path(value, ctx.read_roots)


def _check_build_context(value: str, ctx: _Ctx) -> str | None:
    # --build-context NAME=VALUE: a path is read from the host; an image is fine; a URL is
    # fetched by the host.
    name, eq, source = value.partition("=")
    if not eq or not name:
        return "not NAME=VALUE"
    if source.startswith("docker-image://"):
        return _check_image(source.removeprefix("docker-image://"), ctx)
    return _host_path(source, ctx.read_roots)


# Transports that read an image from a host path or from another store, not from a registry.
_TRANSPORTS = ("docker-archive", "oci-archive", "oci", "dir", "containers-storage", "docker-daemon", "sif", "ostree")
_IMAGE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*")


def _check_image(value: str, ctx: _Ctx) -> str | None:
    ref = value.removeprefix("docker://")
    if value.split(":", 1)[0] in _TRANSPORTS or not _IMAGE_REF.fullmatch(ref):
        return "not a registry image reference"
    head = ref.split("/", 1)[0]
    if "/" in ref and ":" in head and not head.split(":", 1)[1].isdigit():
        return "not a registry image reference"  # dir:/etc and the like
    return None


# --------------------------------------------------------------------------------------------
# podman subcommands the Dev Containers CLI runs (src/spec-shutdown/dockerUtils.ts,
# src/spec-node/singleContainer.ts, containerFeatures.ts, utils.ts of @devcontainers/cli 0.88),
# plus create, which the backend may use for snapshots. Nothing else: no cp (host files in and
# out), compose, commit, push, login, volume, network, system, machine.

_ENV = Opt(True, _check_env)
_FLAG = Opt()
_VALUE = Opt(True)

# podman run / create. What the CLI passes: --sig-proxy=false -a STDOUT -a STDERR, -p for appPort,
# --mount for the workspace, mounts and features' mounts, -l, -e, -u, --security-opt
# label=disable and --userns=keep-id on podman, runArgs, --gpus, --init, --privileged, --cap-add,
# --security-opt, --entrypoint, IMAGE and the keep-alive script. What the runner adds: --name,
# --userns=auto, --network, the class's limits (--memory, --memory-swap, --cpus, --pids-limit),
# --cap-drop, --rm/-d. vet_config keeps the limit flags out of runArgs, so here they can only be
# the runner's.
_RUN_OPTS: dict[str, Opt] = {
    "--sig-proxy": _FLAG,
    "--attach": _VALUE,
    "--mount": Opt(True, _check_mount),
    "--volume": Opt(True, _check_volume),
    "--label": _VALUE,
    "--env": _ENV,
    "--user": _VALUE,
    "--security-opt": Opt(True, _check_security_opt),
    "--userns": Opt(True, _check_userns),
    "--network": Opt(True, _check_network),
    "--net": Opt(True, _check_network),
    "--pid": Opt(True, _one_of("private", why=_HOST_NS)),
    "--ipc": Opt(True, _one_of("private", "none", why=_HOST_NS)),
    "--uts": Opt(True, _one_of("private", why=_HOST_NS)),
    "--cgroupns": Opt(True, _one_of("private", why=_HOST_NS)),
    "--init": _FLAG,
    "--entrypoint": _VALUE,
    "--name": _VALUE,
    "--hostname": _VALUE,
    "--add-host": _VALUE,
    "--workdir": _VALUE,
    "--tmpfs": _VALUE,  # a fresh tmpfs inside the container, charged to its memory limit
    "--shm-size": _VALUE,  # the same
    "--cap-drop": _VALUE,
    "--read-only": _FLAG,
    "--rm": _FLAG,
    "--detach": _FLAG,
    "--interactive": _FLAG,
    "--tty": _FLAG,
    "--memory": _VALUE,
    "--memory-swap": _VALUE,
    "--cpus": _VALUE,
    "--pids-limit": _VALUE,
    "--http-proxy": _FLAG,
    "--stop-signal": _VALUE,
    "--stop-timeout": _VALUE,
    "--platform": _VALUE,
    "--pull": Opt(True, _one_of("never", "missing", "newer", why="not a pull policy")),
}
_RUN_SHORTS = {
    "-a": "--attach",
    "-v": "--volume",
    "-l": "--label",
    "-e": "--env",
    "-u": "--user",
    "-h": "--hostname",
    "-w": "--workdir",
    "-m": "--memory",
    "-d": "--detach",
    "-i": "--interactive",
    "-t": "--tty",
}

_EXEC_OPTS: dict[str, Opt] = {
    "--interactive": _FLAG,
    "--tty": _FLAG,
    "--user": _VALUE,
    "--env": _ENV,
    "--workdir": _VALUE,
    "--detach": _FLAG,
}
_EXEC_SHORTS = {
    "-i": "--interactive",
    "-t": "--tty",
    "-u": "--user",
    "-e": "--env",
    "-w": "--workdir",
    "-d": "--detach",
}

# podman build / buildx build: the Dockerfile, the context and every --build-context are read from
# the host, so they must lie in the workspace or in a folder the backend names (the CLI's
# feature staging folder and cache folder). RUN steps get the build's network and mounts.
_BUILD_OPTS: dict[str, Opt] = {
    "--file": Opt(True, _check_build_path),
    "--tag": _VALUE,
    "--target": _VALUE,
    "--build-arg": _VALUE,
    "--build-context": Opt(True, _check_build_context),
    "--label": _VALUE,
    "--no-cache": _FLAG,
    "--pull": _FLAG,
    "--load": _FLAG,
    "--platform": _VALUE,
    "--cache-from": _VALUE,
    "--security-opt": Opt(True, _check_security_opt),
    "--userns": Opt(True, _check_userns),
    "--network": Opt(True, _check_network),
    "--volume": Opt(True, _check_volume),
    "--memory": _VALUE,
    "--cpus": _VALUE,
    "--pids-limit": _VALUE,
    "--quiet": _FLAG,
}
_BUILD_SHORTS = {"-f": "--file", "-t": "--tag", "-v": "--volume", "-m": "--memory", "-q": "--quiet"}

_FORMAT = {"--format": _VALUE}
_FORMAT_SHORT = {"-f": "--format"}


@dataclass(frozen=True)
class _Command:
    opts: dict[str, Opt] = field(default_factory=dict)
    shorts: dict[str, str] = field(default_factory=dict)
    interspersed: bool = True
    # How positionals are checked: "free" (ids, names), "image" (the first one is an image, the
    # rest its command), "images" (every one), "context" (exactly one, a build context path).
    positionals: str = "free"


_COMMANDS: dict[tuple[str, ...], _Command] = {
    ("run",): _Command(_RUN_OPTS, _RUN_SHORTS, interspersed=False, positionals="image"),
    ("create",): _Command(_RUN_OPTS, _RUN_SHORTS, interspersed=False, positionals="image"),
    ("exec",): _Command(_EXEC_OPTS, _EXEC_SHORTS, interspersed=False),
    ("build",): _Command(_BUILD_OPTS, _BUILD_SHORTS, positionals="context"),
    ("buildx", "build"): _Command(_BUILD_OPTS, _BUILD_SHORTS, positionals="context"),
    ("buildx", "version"): _Command(positionals="none"),
    ("version",): _Command(_FORMAT, _FORMAT_SHORT, positionals="none"),
    ("info",): _Command(_FORMAT, _FORMAT_SHORT, positionals="none"),
    ("inspect",): _Command(
        {"--type": Opt(True, _one_of("container", "image", "volume", why="not a type")), **_FORMAT}, _FORMAT_SHORT
    ),
    ("image", "inspect"): _Command(_FORMAT, _FORMAT_SHORT),
    ("ps",): _Command(
        {"--quiet": _FLAG, "--all": _FLAG, "--filter": _VALUE, "--no-trunc": _FLAG, **_FORMAT},
        {"-q": "--quiet", "-a": "--all", "-f": "--filter"},
        positionals="none",
    ),
    ("events",): _Command({"--filter": _VALUE, "--since": _VALUE, "--until": _VALUE, **_FORMAT}, {"-f": "--filter"}),
    ("start",): _Command(),
    ("stop",): _Command({"--time": _VALUE}, {"-t": "--time"}),
    ("rm",): _Command({"--force": _FLAG, "--volumes": _FLAG}, {"-f": "--force", "-v": "--volumes"}),
    ("pull",): _Command({"--quiet": _FLAG, "--platform": _VALUE}, {"-q": "--quiet"}, positionals="images"),
    ("tag",): _Command(positionals="images"),
}


def vet_podman_argv(
    argv: Sequence[str],
    *,
    workspace: str,
    allowed_volumes_prefix: str | None = None,
    build_roots: Sequence[str] = (),
) -> None:
    """Raise ArgumentRefused unless argv (podman's arguments, without the program name) is one the
    Dev Containers CLI may run on a shared runner.

    workspace: the only host path a container may bind (itself or a folder in it).
    allowed_volumes_prefix: when given, named volumes must start with it (the prebuild's own).
    build_roots: further host folders a build may read its Dockerfile and context from.
    """
    ctx = _Ctx(
        workspace=os.path.realpath(workspace),
        read_roots=tuple(os.path.realpath(p) for p in (workspace, *build_roots)),
        volumes_prefix=allowed_volumes_prefix,
    )
    args = list(argv)
    if args in (["-v"], ["--version"]):
        return  # the CLI's probe of which engine it drives
    if not args:
        raise ArgumentRefused("podman: no subcommand", argument="")
    if args[0].startswith("-"):
        raise ArgumentRefused(f"podman {args[0]}: global options are the runner's, not the CLI's", argument=args[0])
    key = tuple(args[:2]) if tuple(args[:2]) in _COMMANDS else tuple(args[:1])
    command = _COMMANDS.get(key)
    if command is None:
        raise ArgumentRefused(f"podman {' '.join(args[:2])}: not a subcommand the runner allows", argument=args[0])
    label = "podman " + " ".join(key)
    positionals: list[str] = []
    for token in _tokens(args[len(key) :], command.opts, command.shorts, interspersed=command.interspersed):
        if token.name is None:
            positionals.append(token.raw)
            continue
        why = _refusal(token, command.opts, ctx)
        if why:
            raise ArgumentRefused(f"{label}: {token.raw}: {why}", argument=token.raw)
    _check_positionals(label, command.positionals, positionals, ctx)


def _check_positionals(label: str, kind: str, positionals: list[str], ctx: _Ctx) -> None:
    def refuse(arg: str, why: str) -> None:
        raise ArgumentRefused(f"{label}: {arg}: {why}", argument=arg)

    if kind == "none" and positionals:
        refuse(positionals[0], "takes no arguments")
    elif kind == "image":
        if not positionals:
            refuse("", "no image")
        why = _check_image(positionals[0], ctx)
        if why:
            refuse(positionals[0], why)
    elif kind == "images":
        for arg in positionals:
            why = _check_image(arg, ctx)
            if why:
                refuse(arg, why)
    elif kind == "context":
        if len(positionals) != 1:
            refuse(" ".join(positionals), "a build takes exactly one context folder")
        why = _check_build_path(positionals[0], ctx)
        if why:
            refuse(positionals[0], why)


# --------------------------------------------------------------------------------------------
# devcontainer.json


@dataclass(frozen=True)
class Refusal:
    """One thing vet_config dropped: the key, the entry or argument when the key is a list, why."""

    key: str
    reason: str
    detail: str | None = None

    def __str__(self) -> str:
        return f"{self.key} {self.detail}: {self.reason}" if self.detail else f"{self.key}: {self.reason}"


@dataclass(frozen=True)
class VettedConfig:
    data: dict
    refused: tuple[Refusal, ...]

    def warning(self) -> str | None:
        """The sentence for warning_message, None when nothing was refused."""
        if not self.refused:
            return None
        return "devcontainer.json settings not applied on this runner: " + "; ".join(map(str, self.refused))


# Keys dropped whatever their value (a false privileged is dropped too: it asks for nothing).
_DROPPED_KEYS = {
    "initializeCommand": "never runs on the runner host",
    "capAdd": "adds capabilities",
    "securityOpt": "widens the container's privileges",
    "workspaceMount": "the runner decides how the workspace is mounted",
    "dockerComposeFile": "docker compose is not supported",
    "appPort": "publishes ports on the runner host",
}

# runArgs the repository may pass, an allow-list: whatever is not here is dropped, so a flag podman
# gains tomorrow is refused until someone reads what it does. Each one only shapes the container's
# own inside: labels, environment (values given, never copied from the runner's), hostname,
# /etc/hosts entries (--add-host names an address and opens no route; what is reachable is the
# network's business), an init process, a larger /dev/shm or a tmpfs (charged to the container's
# memory limit), dropping capabilities, the user and working folder inside. Left out: the network,
# namespaces, user namespaces and id maps, devices, capabilities added, security options,
# mounts and volumes (use "mounts"), env files and label files (host files), --volumes-from,
# --pod, --name (the runner's), publishing ports, and every resource limit (the environment
# class's, not the repository's).
_RUNARG_OPTS: dict[str, Opt] = {
    "--label": _VALUE,
    "--env": _ENV,
    "--hostname": _VALUE,
    "--add-host": _VALUE,
    "--init": _FLAG,
    "--shm-size": _VALUE,
    "--tmpfs": _VALUE,
    "--cap-drop": _VALUE,
    "--user": _VALUE,
    "--workdir": _VALUE,
}
_RUNARG_SHORTS = {"-l": "--label", "-e": "--env", "-h": "--hostname", "-u": "--user", "-w": "--workdir"}

# Known widening runArgs, so the warning says why rather than "not on the allow-list".
_RUNARG_REASONS = {
    "--privileged": "gives the container every privilege of the host",
    "--cap-add": "adds capabilities",
    "--security-opt": "widens the container's privileges",
    "--device": "gives the container a host device",
    "--gpus": "gives the container host devices",
    "--volume": "mounts are set with mounts, and never of host paths",
    "--mount": "mounts are set with mounts, and never of host paths",
    "--volumes-from": "mounts another container's volumes",
    "--network": "the environment class decides the network",
    "--net": "the environment class decides the network",
    "--pid": _HOST_NS,
    "--ipc": _HOST_NS,
    "--uts": _HOST_NS,
    "--userns": "the runner decides the user namespace",
    "--cgroupns": _HOST_NS,
    "--pod": "joins another pod's namespaces",
    "--env-file": "reads a file of the runner host",
    "--env-host": "copies the runner host's environment",
    "--label-file": "reads a file of the runner host",
    "--publish": "publishes ports on the runner host",
    "--name": "the runner names the container",
}
# Options of the list above that take a value as a separate argument: dropping one must drop its
# value too, or the value would be read as the image.
_RUNARG_VALUED = frozenset(_RUNARG_REASONS) - {"--privileged", "--env-host"}
_RUNARG_OTHER_SHORTS = {"-v": "--volume", "-p": "--publish"}

# build.options the repository may pass: arguments and labels only. A build's network, volumes,
# secrets, ssh agent, output and cache folders all touch the host.
_BUILD_OPTION_OPTS: dict[str, Opt] = {"--build-arg": _VALUE, "--label": _VALUE, "--no-cache": _FLAG, "--pull": _FLAG}


def vet_config(data: dict, *, volumes_prefix: str | None = None) -> VettedConfig:
    """A copy of a parsed devcontainer.json without what would widen the container's access to the
    runner host, and what was dropped. The input is not changed."""
    ctx = _Ctx(workspace=None, read_roots=(), volumes_prefix=volumes_prefix)
    out = dict(data)
    refused: list[Refusal] = []
    for key, reason in _DROPPED_KEYS.items():
        if key in out:
            del out[key]
            refused.append(Refusal(key, reason))
    if "privileged" in out and out.pop("privileged") is not False:
        refused.append(Refusal("privileged", "gives the container every privilege of the host"))
    if "runArgs" in out:
        out["runArgs"] = _vet_run_args(out["runArgs"], refused)
    if "mounts" in out:
        out["mounts"] = _vet_mounts(out["mounts"], ctx, refused)
    if isinstance(out.get("build"), dict) and "options" in out["build"]:
        out["build"] = dict(out["build"], options=_vet_build_options(out["build"]["options"], refused))
    requirements = out.get("hostRequirements")
    if isinstance(requirements, dict) and "gpu" in requirements:
        out["hostRequirements"] = {k: v for k, v in requirements.items() if k != "gpu"}
        refused.append(Refusal("hostRequirements.gpu", "gives the container host devices"))
    return VettedConfig(out, tuple(refused))


def _string_list(value: object, key: str, refused: list[Refusal]) -> list[str]:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    refused.append(Refusal(key, "must be an array of strings"))
    return []


def _vet_args(
    args: list[str],
    key: str,
    opts: dict[str, Opt],
    shorts: dict[str, str],
    reasons: dict[str, str],
    refused: list[Refusal],
) -> list[str]:
    """Keep the options of args that pass; drop each other one whole (a short group with all its
    flags, an option with its separate value) and record it under key."""
    kept: list[str] = []
    ctx = _Ctx(workspace=None, read_roots=(), volumes_prefix=None)
    i = 0
    while i < len(args):
        if args[i] == "--" or not args[i].startswith("-"):
            # A positional among runArgs would become the image (the CLI puts runArgs before it).
            refused.append(Refusal(key, "not an option", args[i]))
            i += 1
            continue
        consumed = next(_tokens(args[i:], opts, shorts, interspersed=True)).consumed
        span = args[i : i + consumed]
        why = None
        for token in _tokens(span, opts, shorts, interspersed=True):
            if token.error:
                why = token.error
            elif token.name in reasons:
                why = reasons[token.name]
            else:
                why = _refusal(token, opts, ctx)
            if why:
                break
        if why:
            refused.append(Refusal(key, why, " ".join(span)))
        else:
            kept.extend(span)
        i += consumed
    return kept


def _vet_run_args(value: object, refused: list[Refusal]) -> list[str]:
    args = _string_list(value, "runArgs", refused)
    # The known widening options are parsed with their values, so "--network host" drops both.
    opts = {**{name: Opt(name in _RUNARG_VALUED) for name in _RUNARG_REASONS}, **_RUNARG_OPTS}
    shorts = {**_RUNARG_SHORTS, **_RUNARG_OTHER_SHORTS}
    return _vet_args(args, "runArgs", opts, shorts, _RUNARG_REASONS, refused)


def _vet_build_options(value: object, refused: list[Refusal]) -> list[str]:
    args = _string_list(value, "build.options", refused)
    return _vet_args(args, "build.options", _BUILD_OPTION_OPTS, {}, {}, refused)


def _vet_mounts(value: object, ctx: _Ctx, refused: list[Refusal]) -> list:
    if not isinstance(value, list):
        refused.append(Refusal("mounts", "must be an array"))
        return []
    kept = []
    for entry in value:
        if isinstance(entry, str):
            spec = entry
        elif isinstance(entry, dict) and all(isinstance(v, str) for v in entry.values()):
            # The CLI writes an object as type=..,src=..,dst=.. (generateMountCommand).
            spec = ",".join(f"{k}={v}" for k, v in entry.items())
        else:
            refused.append(Refusal("mounts", "not a mount string or object", repr(entry)))
            continue
        why = _check_mount(spec, ctx)
        if why:
            refused.append(Refusal("mounts", why, spec))
        else:
            kept.append(entry)
    return kept
