"""Paths of the runner's disk out of what callers read.

Status messages come from the runner (exceptions of git, tar, the sandbox, the snapshot store) and
name the files they were about: `/srv/prebuilds/workspaces/<id>`, the snapshot store, a pool's
instance folder. Those say where the data of every tenant lives on a shared runner, so what the
APIs and pages show names the place instead (`<workspaces>/<id>`). Each status writer calls
`redact_paths` once, on the way into the database, so every interface reads the redacted text.
"""

from __future__ import annotations

import functools
import os
import re

from django.conf import settings

# The neutral word for each of the runner's folders; the more specific ones first, as they lie
# under the data directory by default.
_PLACES = (
    ("WORKSPACES_DIR", "<workspaces>"),
    ("SNAPSHOTS_DIR", "<snapshot store>"),
    ("POOLS_DIR", "<warm pools>"),
    ("ENVIRONMENTS_DIR", "<environments>"),
    ("DATA_DIR", "<data dir>"),
)


def _roots() -> tuple[tuple[str, str], ...]:
    data_dir = getattr(settings, "DATA_DIR", None)
    values = {name: getattr(settings, name, None) for name, _ in _PLACES if name != "ENVIRONMENTS_DIR"}
    values["ENVIRONMENTS_DIR"] = os.path.join(data_dir, "environments") if data_dir else None
    return tuple((str(values[name]), word) for name, word in _PLACES if values[name])


@functools.lru_cache(maxsize=8)
def _pattern(roots: tuple[tuple[str, str], ...]) -> tuple[re.Pattern, dict[str, str]]:
    words: dict[str, str] = {}
    for root, word in roots:
        # The path as configured and as resolved (a symlinked volume shows up either way).
        for form in (os.path.normpath(root), os.path.realpath(root)):
            if form != os.sep:
                words.setdefault(form, word)
    # Longest first, so that a folder inside another gets its own word; a root matches only as a
    # whole path component ("/data" in "/database" is left alone).
    alternatives = "|".join(re.escape(path) for path in sorted(words, key=len, reverse=True))
    return re.compile(f"(?:{alternatives})(?![^/\\s'\"`:;,)\\]}}>])"), words


def path_redactor():
    """redact_paths for many texts in a row (log lines): the settings are read once."""
    pattern, words = _pattern(_roots())

    def word(match: re.Match) -> str:
        return words[match.group(0)]

    def redact(text: str) -> str:
        return pattern.sub(word, text) if text else text

    return redact


def redact_paths(text: str) -> str:
    """`text` with every path under the runner's folders named by its place instead."""
    return path_redactor()(text) if text else text
