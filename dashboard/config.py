"""Strict parsing of configuration from the environment.

A malformed value stops start-up with a message that names the variable and what
was expected, instead of a surprise later (healthchecks' settings are the model).
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from runner.netns import parse_allowed_private_networks

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    """The variable's value, or the content of the file named by NAME_FILE (for secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc.strerror}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use one of 1, 0, true, false, yes, no")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={value} is above the maximum {maximum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    items = [item.strip() for item in raw.split(",")]
    if any(not item for item in items):
        raise ImproperlyConfigured(f"{name}={raw!r} has an empty item: give a comma-separated list")
    return items


def sandbox_private_networks(name: str) -> tuple[str, ...]:
    """Comma-separated IPv4 networks (CIDR, no host bits) inside the private ranges; empty by default."""
    raw = os.environ.get(name, "")
    if not raw.strip():
        return ()
    try:
        return tuple(str(net) for net in parse_allowed_private_networks(env_list(name, [])))
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def database_config(url: str, data_dir: Path) -> dict:
    """SQLite under the data directory when no URL is set (or a sqlite:////path URL names the file);
    PostgreSQL (psycopg 3) when a postgresql:// URL is set."""
    if not url or url.startswith("sqlite:"):
        name = Path(url.split(":", 1)[1].removeprefix("///")) if url else data_dir / "db.sqlite3"
        if url and not url.startswith("sqlite:////"):
            raise ImproperlyConfigured("DATABASE_URL for SQLite must be absolute: sqlite:////path/to/db.sqlite3")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name,
            # The web server and the worker write at the same time: WAL lets readers go on while
            # one writes, IMMEDIATE takes the write lock up front (no deadlock on lock upgrade),
            # and the timeout makes a second writer wait instead of failing at once.
            # Tests use a file too (not the shared-cache in-memory database), so that concurrent
            # writers wait on the busy timeout as they do in production instead of failing.
            "TEST": {"NAME": str(data_dir / "test.sqlite3")},
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
            },
        }
    import dj_database_url

    scheme = url.split(":", 1)[0]
    if scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL has the scheme {scheme!r}: use postgresql://user:password@host:port/name"
        )
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL cannot be parsed: {exc}") from exc
    if config["ENGINE"].endswith("postgresql"):
        # A restarted PostgreSQL must not leave the web server with dead connections.
        config["CONN_HEALTH_CHECKS"] = True
    return config


def secret_key(data_dir: Path, debug_default_allowed: bool) -> str:
    """SECRET_KEY (or SECRET_KEY_FILE); for development, one generated once and kept in the data dir."""
    value = env_str("SECRET_KEY")
    if value:
        if len(value) < 32:
            raise ImproperlyConfigured("SECRET_KEY is shorter than 32 characters")
        return value
    if not debug_default_allowed:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) must be set in production")
    return _generated_once(data_dir / "secret_key", lambda: secrets.token_urlsafe(50))


def _generated_once(path: Path, make) -> str:
    """The key kept in path, made by make() the first time. Written to a private temporary file
    (0600 from the start) and linked into place, so that the web server and the worker starting
    together agree on one key."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(make())
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def secrets_encryption_keys(data_dir: Path, debug_default_allowed: bool) -> list[str]:
    """SECRETS_ENCRYPTION_KEYS (or SECRETS_ENCRYPTION_KEYS_FILE): Fernet keys, comma-separated,
    newest first (the first encrypts, every one decrypts, so a rotation adds a key in front, runs
    `manage.py rotate_secrets_key`, then drops the old one). For development, one key generated
    once and kept in the data dir (0600), as SECRET_KEY is."""
    value = env_str("SECRETS_ENCRYPTION_KEYS")
    if value:
        keys = [key.strip() for key in value.split(",") if key.strip()]
        if keys:
            return keys
    if not debug_default_allowed:
        raise ImproperlyConfigured(
            "SECRETS_ENCRYPTION_KEYS (or SECRETS_ENCRYPTION_KEYS_FILE) must be set in production"
        )
    return [_generated_once(data_dir / "secrets_encryption_key", _fernet_key)]


def _fernet_key() -> str:
    """32 random bytes, URL-safe base64: what Fernet.generate_key() returns."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


# --- Private files ------------------------------------------------------------------------------
# Everything the product writes (database, broker queue, snapshots, logs, secret key, passwords) is
# its own user's alone. Lifecycle commands run as other host uids (runner.uids): they must read
# none of it, and may only traverse the folders above their own workspace without listing them.
PRIVATE_UMASK = 0o077
# Folders of DATA_DIR that a sandbox uid must traverse (x) to reach its workspace; never listable.
TRAVERSED_DIRS = ("workspaces", "environments")


def use_private_umask() -> None:
    """umask 077 for this process and everything it starts. Called first thing by the settings
    module, which every process of the product imports (manage.py, gunicorn's wsgi, Celery worker
    and beat), before anything is created."""
    os.umask(PRIVATE_UMASK)


def tighten_data_dir(data_dir: Path, *extra_private: Path) -> None:
    """Make what an older version (or another umask) left in the data dir private: the data dir
    itself 0711 (traverse, not list), TRAVERSED_DIRS 0711, every other folder 0700 and file 0600,
    one level deep (a folder at 0700 hides what is inside it). Cheap: one listing, a chmod only
    where a mode differs, nothing that is not ours. `extra_private` folders (a snapshot store or
    pools folder outside the data dir) become 0700."""
    _chmod_own(data_dir, 0o711)
    with os.scandir(data_dir) as entries:
        for entry in entries:
            if entry.is_symlink():
                continue
            if entry.is_dir():
                _chmod_own(Path(entry.path), 0o711 if entry.name in TRAVERSED_DIRS else 0o700)
            else:
                _chmod_own(Path(entry.path), 0o600)
    for path in extra_private:
        if path.is_dir() and not path.is_symlink():
            _chmod_own(path, 0o700)


def _chmod_own(path: Path, mode: int) -> None:
    try:
        st = path.lstat()
        if st.st_uid == os.geteuid() and (st.st_mode & 0o7777) != mode:
            path.chmod(mode)
    except FileNotFoundError:
        pass  # removed meanwhile (a broker message, a temporary file)


def env_path_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list of absolute paths, each resolved (symlinks followed)."""
    items = env_list(name, default)
    for item in items:
        if not os.path.isabs(item):
            raise ImproperlyConfigured(f"{name}: {item!r} is not an absolute path")
    return [os.path.realpath(item) for item in items]


_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def env_host_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list of host names or IP addresses (lower-cased; IPs in their usual form)."""
    hosts = []
    for item in env_list(name, default):
        item = item.lower().removeprefix("[").removesuffix("]")
        try:
            hosts.append(str(ipaddress.ip_address(item)))
            continue
        except ValueError:
            pass
        if not _HOST_NAME.match(item.rstrip(".")):
            raise ImproperlyConfigured(f"{name}: {item!r} is neither a host name nor an IP address")
        hosts.append(item.rstrip("."))
    return hosts
