"""The podman the Dev Containers CLI runs (its --docker-path): vet, add the runner's options, exec.

Every argument vector is checked by runner.container_policy.vet_podman_argv before podman sees it,
whichever CLI version or configuration produced it. Then the guard adds what the runner decides
and the repository cannot ask for:

- on run and create: a user namespace of its own (--userns=auto: root inside is an unprivileged
  host uid), the environment class's network (with network, runner.podman_hook keeps the runner
  host and private networks unreachable), memory, CPU and process limits, and the run's labels;
  the workspace bind gets U (its files are chowned into the container's id range, or root inside
  could not write its own checkout);
- on build: no network unless the class allows it, and the class's memory. Not a user namespace:
  podman 4.3 writes a --userns=auto build's files with the shifted host ids, so no container could
  start from the image (containers/container-libs#914); a build's RUN steps run as root in
  podman's build container, with its default capabilities, as on any rootful podman host;
- named volumes are renamed into the run's own namespace (a repository's "cache" volume is not
  another tenant's "cache");
- exec, start, stop, rm and container inspect act only on containers of this run, and events
  tell of this run's containers only; the CLI's ps for its own container is answered from that
  container alone (answer_ps);
- before the first command run as a user other than root (the devcontainer's remoteUser), the
  workspace is handed to that user (chown -R inside the container), as a Codespace's checkout
  belongs to its user: the bind mount's U gave it to the container's root.

The CLI adds --userns=keep-id on podman when a remoteUser is set (meant for rootless podman; a
rootful podman refuses it): the guard drops it, since --userns=auto replaces it.
Runs as a bare interpreter (runner.podman.python_command: -I -S), so it imports only the standard
library and the runner's own modules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .container_policy import parse_mount, vet_podman_argv
from .errors import ArgumentRefused
from .podman import GUARD_POLICY_ENV, RUN_LABEL, GuardPolicy, container_name

REFUSED_EXIT = 125  # podman's own status for "the command could not run"
_OWNED_SUBCOMMANDS = {"exec", "start", "stop", "rm"}


def volume_name(policy: GuardPolicy, name: str) -> str:
    return f"prebuild-{policy.run_id}-{name}"


def rewrite(policy: GuardPolicy, argv: list[str]) -> list[str]:
    """argv vetted and completed with the runner's options; raises ArgumentRefused."""
    args = list(argv)
    sub = args[0] if args else ""
    if sub in ("run", "create"):
        args = _drop_keep_id(args)
        args = _rename_volumes(policy, args)
    vet_podman_argv(
        args,
        workspace=policy.workspace,
        allowed_volumes_prefix=volume_name(policy, ""),
        build_roots=policy.build_roots,
    )
    if sub in ("run", "create"):
        args = [sub, *policy.run_options(), *(_own_workspace(policy, a) for a in args[1:])]
        if policy.hooks_dir:
            # A global option: podman runs the hook that filters the container's routes.
            args = [f"--hooks-dir={policy.hooks_dir}", *args]
    elif sub == "events":
        # The CLI waits for "a container started" and takes the first one it hears of: on a shared
        # runner that may be another run's (whose inspect this guard would refuse). Only its own.
        args = [*args, "--filter", f"label={RUN_LABEL}={policy.run_id}"]
    elif sub == "build" or args[:2] == ["buildx", "build"]:
        n = 2 if sub == "buildx" else 1
        limits = [f"--network={'none' if policy.network == 'none' else 'private'}", f"--memory={policy.memory_bytes}"]
        args = [*args[:n], *limits, *args[n:]]
    return args


def _drop_keep_id(args: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(args):
        if args[i] == "--userns=keep-id":
            i += 1
        elif args[i] == "--userns" and i + 1 < len(args) and args[i + 1] == "keep-id":
            i += 2
        else:
            out.append(args[i])
            i += 1
    return out


def _rename_volumes(policy: GuardPolicy, args: list[str]) -> list[str]:
    out = []
    for i, arg in enumerate(args):
        value_of_mount = i > 0 and args[i - 1] == "--mount"
        if arg.startswith("--mount=") or value_of_mount:
            prefix, value = ("--mount=", arg[len("--mount=") :]) if arg.startswith("--mount=") else ("", arg)
            fields = parse_mount(value)
            if isinstance(fields, dict) and fields.get("type", "volume") == "volume" and fields.get("source"):
                fields["source"] = volume_name(policy, fields["source"])
                arg = prefix + ",".join(f"{k}={v}" for k, v in fields.items())
        out.append(arg)
    return out


def _own_workspace(policy: GuardPolicy, arg: str) -> str:
    fields = parse_mount(arg) if arg.startswith("type=bind") else None
    if isinstance(fields, dict) and os.path.realpath(fields.get("source", "")) == os.path.realpath(policy.workspace):
        _state(WORKSPACE_TARGET).write_text(fields.get("target", ""))
        return arg + ",U=true"
    return arg


WORKSPACE_TARGET = "workspace-target"
OWNED = "owned-containers"  # ids (as the CLI spelled them) already found to be this run's


def _state(name: str) -> Path:
    """A file of this run's guard state, beside its policy (the guard runs once per podman call)."""
    return Path(os.environ[GUARD_POLICY_ENV]).parent / name


def hand_over_workspace(policy: GuardPolicy, args: list[str]) -> None:
    """exec -u USER (not root) for the first time: chown the workspace to USER first."""
    if args[:1] != ["exec"]:  # (run, which may carry a global option first, is not an exec)
        return
    options, container = parse_exec(args[1:])
    user = options.get("--user", "")
    if not container or user in ("", "root", "0") or user.startswith(("root:", "0:")):
        return
    target, marker = _state(WORKSPACE_TARGET), _state("workspace-owner")
    if not target.exists() or marker.exists():
        return
    owner = user if ":" in user else f"{user}:"
    subprocess.run(
        [policy.podman, "exec", "-u", "root", container, "chown", "-R", owner, target.read_text()],
        capture_output=True,
        env=os.environ,
        check=False,
    )
    marker.write_text(user)


def check_ownership(policy: GuardPolicy, args: list[str]) -> None:
    """exec, start, stop, rm and inspect --type container name containers: only this run's."""
    sub = args[0] if args else ""
    if (
        sub == "inspect"
        and "--type" in args
        and args[args.index("--type") + 1 : args.index("--type") + 2] == ["container"]
    ):
        names = [a for a in args[1:] if not a.startswith("-") and a != "container"]
    elif sub in _OWNED_SUBCOMMANDS:
        names = [a for a in args[1:] if not a.startswith("-")]
        if sub == "exec":
            names = _exec_container(args[1:])
        elif sub == "stop":
            names = [a for a in names if not a.isdigit()]  # -t N
    else:
        return
    owned = _state(OWNED)
    known = set(owned.read_text().split()) if owned.exists() else set()
    for name in names:
        if name in known:
            continue  # checked by an earlier call of this run
        labels = subprocess.run(
            [policy.podman, "container", "inspect", "--format", "{{json .Config.Labels}}", name],
            capture_output=True,
            text=True,
            env=os.environ,
        )
        owner = (json.loads(labels.stdout or "null") or {}).get(RUN_LABEL) if labels.returncode == 0 else None
        if owner != policy.run_id:
            raise ArgumentRefused(f"podman {sub}: {name}: not a container of this prebuild", argument=name)
        with open(owned, "a") as f:
            f.write(name + "\n")


_EXEC_VALUED = {
    **{name: "--user" for name in ("-u", "--user")},
    **{name: "--env" for name in ("-e", "--env")},
    **{name: "--workdir" for name in ("-w", "--workdir")},
}


def parse_exec(args: list[str]) -> tuple[dict[str, str], str | None]:
    """podman exec [options] CONTAINER COMMAND...: the valued options (by long name; the last one
    given wins) and the container."""
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if arg in _EXEC_VALUED and i + 1 < len(args):
            options[_EXEC_VALUED[arg]] = args[i + 1]
            i += 2
        elif eq and name in _EXEC_VALUED:
            options[_EXEC_VALUED[name]] = value
            i += 1
        elif arg.startswith("-"):
            i += 1
        else:
            return options, arg
    return options, None


def _exec_container(args: list[str]) -> list[str]:
    container = parse_exec(args)[1]
    return [container] if container else []


def answer_ps(policy: GuardPolicy, args: list[str]) -> str | None:
    """What `ps -q [-a] --filter label=...` of this run's label prints, read from the run's own
    container by name; None for any other ps (podman answers those).

    The CLI looks for its container with such a ps. podman ps reads the state of every container on
    the host and waits as long as any of them is busy: one whose processes were held at their pids
    limit kept a neighbour's ps waiting for minutes. The run's container has a known name
    (runner.podman.container_name), so the guard inspects that one container instead."""
    if args[:2] != ["ps", "-q"]:
        return None
    rest = args[2:]
    everything = rest[:1] == ["-a"]
    rest = rest[1:] if everything else rest
    if len(rest) % 2 or any(flag != "--filter" for flag in rest[::2]):
        return None
    wanted: dict[str, str | None] = {}
    for value in rest[1::2]:
        kind, eq, label = value.partition("=")
        if kind != "label" or not eq:
            return None
        key, has_value, expected = label.partition("=")
        wanted[key] = expected if has_value else None
    if wanted.get(RUN_LABEL) != policy.run_id:
        return None
    found = subprocess.run(
        [policy.podman, "container", "inspect", container_name(policy.run_id)],
        capture_output=True,
        text=True,
        env=os.environ,
    )
    if found.returncode != 0:
        return "" if "no such" in found.stderr.lower() else None
    (container,) = json.loads(found.stdout)
    labels = container.get("Config", {}).get("Labels") or {}
    matches = all(key in labels and (value is None or labels[key] == value) for key, value in wanted.items())
    running = container.get("State", {}).get("Running", False)
    return f"{container['Id'][:12]}\n" if matches and (everything or running) else ""


def load_policy() -> GuardPolicy:
    with open(os.environ[GUARD_POLICY_ENV]) as f:
        return GuardPolicy(**json.load(f))


def main(argv: list[str]) -> int:
    policy = load_policy()
    try:
        args = rewrite(policy, argv)
        check_ownership(policy, args)
        hand_over_workspace(policy, args)
        answer = answer_ps(policy, args)
    except ArgumentRefused as refused:
        message = f"refused by the runner's container policy: {refused}"
        if policy.refusals_path:
            with open(policy.refusals_path, "a") as f:
                f.write(message + "\n")
        print(message, file=sys.stderr)
        return REFUSED_EXIT
    if answer is not None:
        sys.stdout.write(answer)
        return 0
    os.execve(policy.podman, [policy.podman, *args], os.environ)
    return REFUSED_EXIT  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
