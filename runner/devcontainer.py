"""Find and read devcontainer.json, and extract what a prebuild runs.

devcontainer.json is JSONC: JSON plus // and /* */ comments and trailing commas. We blank
comments and trailing commas out with spaces (keeping every newline) and hand the rest to
the standard json module, so a syntax error is reported at the line of the original file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DevcontainerError

DEFAULT_PATHS = (".devcontainer/devcontainer.json", ".devcontainer.json")
# A prebuild runs the commands that prepare the content, never those meant for a user's session
# (postCreateCommand, postStartCommand, postAttachCommand).
PREBUILD_HOOKS = ("onCreateCommand", "updateContentCommand")
# The local runner runs commands on the runner host image: it cannot build or pull a container.
UNSUPPORTED_KEYS = ("image", "features", "build", "dockerFile", "dockerComposeFile")


@dataclass(frozen=True)
class Command:
    """One process to start: argv is run as is (a string command becomes /bin/sh -c ...)."""

    hook: str
    name: str | None
    argv: tuple[str, ...]

    @property
    def step(self) -> str:
        return f"{self.hook}:{self.name}" if self.name else self.hook


@dataclass(frozen=True)
class Hook:
    """A lifecycle hook; its commands run in parallel when it was written as an object."""

    name: str
    commands: tuple[Command, ...]
    parallel: bool


@dataclass(frozen=True)
class DevcontainerConfig:
    path: str  # relative to the workspace, as found
    data: dict = field(repr=False)
    hooks: tuple[Hook, ...]
    unsupported_keys: tuple[str, ...]


def candidate_paths(configured_path: str | None = None) -> list[str]:
    paths = [configured_path] if configured_path else []
    return paths + [p for p in DEFAULT_PATHS if p not in paths]


def find_devcontainer(workspace: Path, configured_path: str | None = None) -> Path | None:
    """The first existing candidate: the configured path, then the two standard locations."""
    root = Path(workspace).resolve()
    for relative in candidate_paths(configured_path):
        path = (root / relative).resolve()
        # A repository could point the path (or a symlink) at a host file: stay inside.
        if path.is_relative_to(root) and path.is_file():
            return path
    return None


def load_devcontainer(workspace: Path, configured_path: str | None = None) -> DevcontainerConfig | None:
    """Parse the workspace's devcontainer.json; None when there is none."""
    path = find_devcontainer(workspace, configured_path)
    if path is None:
        return None
    label = path.relative_to(Path(workspace).resolve()).as_posix()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DevcontainerError(f"{label}: cannot read: {exc}") from exc
    return parse_devcontainer(text, label)


def parse_devcontainer(text: str, label: str = "devcontainer.json") -> DevcontainerConfig:
    data = parse_jsonc(text, label)
    if not isinstance(data, dict):
        raise DevcontainerError(f"{label}: the top level must be an object")
    hooks = []
    for hook in PREBUILD_HOOKS:
        if hook in data:
            parsed = _hook(hook, data[hook], label)
            if parsed.commands:
                hooks.append(parsed)
    unsupported = tuple(key for key in UNSUPPORTED_KEYS if key in data)
    return DevcontainerConfig(path=label, data=data, hooks=tuple(hooks), unsupported_keys=unsupported)


# What runs once the environment is handed to someone (the prebuild ran PREBUILD_HOOKS before).
CLAIM_HOOKS = ("postCreateCommand", "postStartCommand")


def claim_hooks(config: DevcontainerConfig) -> tuple[Hook, ...]:
    """postCreateCommand then postStartCommand of a config, parsed like the prebuild's hooks."""
    hooks = []
    for hook in CLAIM_HOOKS:
        if hook in config.data:
            parsed = _hook(hook, config.data[hook], config.path)
            if parsed.commands:
                hooks.append(parsed)
    return tuple(hooks)


def _hook(hook: str, value: object, label: str) -> Hook:
    if isinstance(value, dict):
        commands = []
        for name, command in value.items():
            argv = _argv(command, f"{hook}.{name}", label)
            if argv:
                commands.append(Command(hook, name, argv))
        return Hook(hook, tuple(commands), parallel=True)
    argv = _argv(value, hook, label)
    return Hook(hook, (Command(hook, None, argv),) if argv else (), parallel=False)


def _argv(value: object, where: str, label: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return ("/bin/sh", "-c", value) if value.strip() else ()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise DevcontainerError(f"{label}: {where} must be a string, an array of strings or an object of those")


def parse_jsonc(text: str, label: str) -> object:
    try:
        return json.loads(strip_jsonc(text, label))
    except json.JSONDecodeError as exc:
        raise DevcontainerError(f"{label} line {exc.lineno}: {exc.msg} (column {exc.colno})") from None


def strip_jsonc(text: str, label: str) -> str:
    """Blank out comments and trailing commas, keeping every character's line and column."""
    out = list(text)
    i, n = 0, len(text)
    last_comma = None  # index of a comma with only whitespace/comments after it so far
    while i < n:
        c = text[i]
        if c == '"':
            last_comma = None
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                line = text.count("\n", 0, i) + 1
                raise DevcontainerError(f"{label} line {line}: unterminated /* comment")
            for j in range(i, end + 2):
                if out[j] != "\n":
                    out[j] = " "
            i = end + 2
        else:
            if c == ",":
                last_comma = i
            elif c in "}]" and last_comma is not None:
                out[last_comma] = " "
                last_comma = None
            elif not c.isspace():
                last_comma = None
            i += 1
    return "".join(out)
