"""Writes and access rules for organizations, projects, classes and API tokens."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import django.dispatch
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, router, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from core.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from core.lookups import get_by_id
from core.masking import MIN_MASKED_LENGTH
from projects import secrets as secret_crypto
from projects.models import (
    ApiToken,
    EnvironmentClass,
    Membership,
    Organization,
    Project,
    Role,
    Runner,
    RunnerBackend,
    Secret,
    SecretAction,
    SecretChange,
    SecretScope,
    new_webhook_secret_nonce,
)
from projects.shapes import PROJECT, PROJECT_FIELDS
from runner.checkout import LocalSources, local_path

# Sent after a project's prebuild configuration changed, with the classes that no longer get
# prebuilds. The warm pool side listens (so this room needs no knowledge of pools).
prebuild_configuration_changed = django.dispatch.Signal()

TOKEN_PREFIX = "pbk_"


# --- membership and roles ---------------------------------------------------------------------


def role_in(user, organization_id) -> str | None:
    if not user or not user.is_authenticated:
        return None
    if not isinstance(organization_id, uuid.UUID):
        try:
            organization_id = uuid.UUID(str(organization_id))
        except ValueError:
            return None
    return user.organization_roles.get(organization_id)


def require_member(user, organization_id) -> str:
    """The user's role in the organization. Outsiders get NotFound: we do not reveal what exists."""
    role = role_in(user, organization_id)
    if role is None:
        raise NotFound("not found")
    return role


def require_admin(user, organization_id, action: str) -> None:
    if require_member(user, organization_id) != Role.ADMIN:
        raise PermissionDenied(f"only organization admins may {action}")


def organization_create(*, name: str, admin: AbstractBaseUser | None = None) -> Organization:
    name = (name or "").strip()
    if not name:
        raise InvalidArgument("name must not be empty", field="name")
    try:
        with transaction.atomic():
            organization = Organization.objects.create(name=name)
            if admin is not None:
                Membership.objects.create(organization=organization, user=admin, role=Role.ADMIN)
                admin.forget_organization_roles()
    except IntegrityError:
        raise AlreadyExists(f"an organization named {name!r} already exists", field="name") from None
    return organization


def membership_set(*, organization: Organization, user, role: str) -> Membership:
    if role not in Role.values:
        raise InvalidArgument(f"role must be one of {', '.join(Role.values)}", field="role")
    membership, _ = Membership.objects.update_or_create(organization=organization, user=user, defaults={"role": role})
    user.forget_organization_roles()
    return membership


def runner_create(
    *, organization: Organization, name: str, queue: str, backend: str = RunnerBackend.BUBBLEWRAP
) -> Runner:
    if backend not in RunnerBackend.values:
        raise InvalidArgument(f"backend must be one of {', '.join(RunnerBackend.values)}", field="backend")
    if not name.strip():
        raise InvalidArgument("name must not be empty", field="name")
    if not queue.strip() or any(c.isspace() for c in queue):
        raise InvalidArgument("queue must be a non-empty name without spaces", field="queue")
    try:
        with transaction.atomic():
            return Runner.objects.create(
                organization=organization, name=name.strip(), queue=queue.strip(), backend=backend
            )
    except IntegrityError:
        raise AlreadyExists(f"a runner named {name!r} or with queue {queue!r} already exists") from None


def environment_class_create(
    *,
    runner: Runner,
    display_name: str,
    cpu_cores: int = 2,
    memory_mb: int = 4096,
    disk_gb: int = 20,
    max_processes: int = 512,
    allow_network: bool = False,
    enabled: bool = True,
    description: str = "",
) -> EnvironmentClass:
    if not display_name.strip():
        raise InvalidArgument("display_name must not be empty", field="display_name")
    for field, value in (("cpu_cores", cpu_cores), ("memory_mb", memory_mb), ("disk_gb", disk_gb)):
        if value <= 0:
            raise InvalidArgument(f"{field} must be positive", field=field)
    return EnvironmentClass.objects.create(
        runner=runner,
        display_name=display_name.strip(),
        description=description,
        cpu_cores=cpu_cores,
        memory_mb=memory_mb,
        disk_gb=disk_gb,
        max_processes=max_processes,
        allow_network=allow_network,
        enabled=enabled,
    )


# --- projects ---------------------------------------------------------------------------------


def project_get(*, user, project_id) -> Project:
    """A project the user may see, else NotFound (also for malformed ids)."""
    return get_by_id(
        Project.objects.alive().visible_to(user).select_related("default_environment_class"),
        project_id,
        label="project",
        field="project_id",
    )


def repository_local_sources() -> LocalSources:
    """Where a project's local repository may be: the settings' roots, minus the product's own data.
    Plain data, so that the runner checks the same rule again when it clones."""
    return LocalSources.of(settings.REPOSITORY_LOCAL_ROOTS, settings.REPOSITORY_FORBIDDEN_ROOTS)


LOCAL_REPOSITORY_REFUSED = (
    "repository_url must be an https:// URL, or a local repository inside a folder named by the "
    "REPOSITORY_LOCAL_ROOTS setting and outside the product's data directory"
)


def validate_repository_url(url: str) -> str:
    """The URL, stripped, if a project may use it; else InvalidArgument."""
    url = (url or "").strip()
    if not url:
        raise InvalidArgument("repository_url must not be empty", field="repository_url")
    parts = urlsplit(url)
    local = local_path(url)
    if local is not None:
        # Checked on the real path (symlinks resolved); the runner checks again when it clones.
        # The answer is the same whether the path exists or not.
        if repository_local_sources().resolve(local) is None:
            raise InvalidArgument(LOCAL_REPOSITORY_REFUSED, field="repository_url")
        return url
    if parts.scheme in ("https", "http"):
        if not parts.netloc:
            raise InvalidArgument("repository_url has no host", field="repository_url")
        if parts.username or parts.password:
            # Credentials in the URL would end up in logs and pages: they belong in access_token.
            raise InvalidArgument(
                "repository_url must not contain credentials; set the access token instead",
                field="repository_url",
            )
        return url
    raise InvalidArgument(
        "repository_url must be an https:// or file:// URL or an absolute local path", field="repository_url"
    )


def _validate_devcontainer_path(path: str) -> str:
    path = (path or "").strip() or ".devcontainer/devcontainer.json"
    if path.startswith("/") or ".." in path.split("/"):
        raise InvalidArgument("devcontainer_path must be relative to the repository root", field="devcontainer_path")
    return path


def _validate_timeout(timeout: timedelta) -> timedelta:
    field = PROJECT.prebuild_timeout.path
    if not isinstance(timeout, timedelta):
        raise InvalidArgument("timeout must be a duration", field=field)
    if not settings.PROJECT_MIN_PREBUILD_TIMEOUT <= timeout <= settings.PREBUILD_MAX_TIMEOUT:
        raise InvalidArgument("timeout must be between 5 minutes and 2 hours", field=field)
    return timeout


def _as_uuid(value) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def _prebuild_classes(organization_id, class_ids) -> list[EnvironmentClass]:
    """The classes named by `class_ids`, each of them the organization's; else InvalidArgument."""
    field = PROJECT.prebuild_environment_class_ids.path
    ids = {_as_uuid(class_id) for class_id in class_ids}
    classes = list(EnvironmentClass.objects.select_related("runner").filter(pk__in=ids - {None}))
    if None in ids or len(classes) != len(ids):
        raise InvalidArgument("an environment class was not found", field=field)
    for environment_class in classes:
        if environment_class.runner.organization_id != organization_id:
            raise InvalidArgument(f"environment class {environment_class.id} not found", field=field)
    return classes


def _check_default_class(organization_id, class_id) -> None:
    field = PROJECT.default_environment_class_id.path
    key = _as_uuid(class_id)
    environment_class = EnvironmentClass.objects.select_related("runner").filter(pk=key).first() if key else None
    if environment_class is None:
        raise InvalidArgument(f"environment class {class_id} not found", field=field)
    if environment_class.runner.organization_id != organization_id:
        raise InvalidArgument("default environment class not found", field=field)


def _check_executor(organization_id, user_id) -> None:
    field = PROJECT.executor_id.path
    key = _as_uuid(user_id)
    if key is not None and Membership.objects.filter(organization_id=organization_id, user_id=key).exists():
        return
    if key is None or not get_user_model().objects.filter(pk=key).exists():
        raise InvalidArgument("executor not found", field=field)
    raise InvalidArgument("executor must be a member of the organization", field=field)


_UNSET = object()


@transaction.atomic
def project_create(
    *,
    actor,
    organization: Organization,
    name: str,
    repository_url: str,
    branch: str = "main",
    devcontainer_path: str = ".devcontainer/devcontainer.json",
    default_environment_class_id=None,
    access_token: str = "",
    webhook_url: str = "",
    prebuilds_enabled: bool = False,
    prebuild_environment_class_ids=(),
    prebuild_timeout: timedelta = timedelta(hours=1),
    daily_schedule_hour_utc: int | None = None,
    executor_id=None,
    enable_jetbrains_warmup: bool = False,
) -> Project:
    """A project of `organization`. Classes and the executor are given by id (every interface
    passes what the caller sent): they are looked up, and must be the organization's, here."""
    require_admin(actor, organization.id, "create projects")
    project = Project(organization=organization, created_by=actor)
    _apply_project_fields(
        project,
        name=name,
        repository_url=repository_url,
        branch=branch,
        devcontainer_path=devcontainer_path,
        default_environment_class_id=default_environment_class_id,
        access_token=access_token,
        webhook_url=webhook_url,
        prebuilds_enabled=prebuilds_enabled,
        prebuild_timeout=prebuild_timeout,
        daily_schedule_hour_utc=daily_schedule_hour_utc,
        executor_id=executor_id,
        enable_jetbrains_warmup=enable_jetbrains_warmup,
    )
    classes = _prebuild_classes(organization.id, prebuild_environment_class_ids)
    try:
        with transaction.atomic():
            project.save()
    except IntegrityError:
        raise AlreadyExists(f"a project named {project.name!r} already exists", field="name") from None
    project.prebuild_environment_classes.set(classes)
    return project


@transaction.atomic
def project_update(*, actor, project: Project, prebuild_environment_class_ids=_UNSET, **fields) -> Project:
    """Change any of project_create's fields; absent ones keep their value. Classes that stop getting
    prebuilds (or all of them, when prebuilds are disabled) are announced so their pools go away.
    Every interface that edits a project comes here: the pages, REST and the admin (read-only)."""
    require_admin(actor, project.organization_id, "edit projects")
    project = Project.objects.select_for_update().get(pk=project.pk)
    before = (
        set(project.prebuild_environment_classes.values_list("id", flat=True)) if project.prebuilds_enabled else set()
    )
    unknown = set(fields) - PROJECT_FIELDS
    if unknown:
        raise InvalidArgument(f"unknown field {sorted(unknown)[0]}", field=sorted(unknown)[0])
    current = {name: getattr(project, name) for name in PROJECT_FIELDS - {"prebuild_environment_class_ids"}}
    _apply_project_fields(project, **{**current, **fields})
    try:
        with transaction.atomic():
            project.save()
    except IntegrityError:
        raise AlreadyExists(f"a project named {project.name!r} already exists", field="name") from None
    if prebuild_environment_class_ids is not _UNSET:
        project.prebuild_environment_classes.set(
            _prebuild_classes(project.organization_id, prebuild_environment_class_ids)
        )
    after = (
        set(project.prebuild_environment_classes.values_list("id", flat=True)) if project.prebuilds_enabled else set()
    )
    removed = before - after
    if removed:
        transaction.on_commit(
            lambda: prebuild_configuration_changed.send(
                sender=Project, project=project, removed_class_ids=removed, actor=actor
            )
        )
    return project


@transaction.atomic
def project_delete(*, actor, project: Project) -> None:
    require_admin(actor, project.organization_id, "delete projects")
    classes = set(project.prebuild_environment_classes.values_list("id", flat=True))
    Project.objects.filter(pk=project.pk).update(deleted_at=timezone.now(), prebuilds_enabled=False)
    transaction.on_commit(
        lambda: prebuild_configuration_changed.send(
            sender=Project, project=project, removed_class_ids=classes, actor=actor
        )
    )


def _apply_project_fields(
    project: Project,
    *,
    name,
    repository_url,
    branch,
    devcontainer_path,
    default_environment_class_id,
    access_token,
    webhook_url,
    prebuilds_enabled,
    prebuild_timeout,
    daily_schedule_hour_utc,
    executor_id,
    enable_jetbrains_warmup=False,
) -> None:
    """Validate and set the fields (the classes aside). The default class and the executor are
    checked on every save, as the other fields are: an executor who left the organization must be
    replaced before anything else changes."""
    name = (name or "").strip()
    if not name:
        raise InvalidArgument("name must not be empty", field="name")
    if len(name) > PROJECT.name.max_length:
        raise InvalidArgument(PROJECT.name.length_error(), field="name")
    branch = (branch or "").strip() or "main"
    if branch.startswith("-") or any(c.isspace() for c in branch):
        raise InvalidArgument("branch is not a valid branch name", field="branch")
    if default_environment_class_id is not None:
        _check_default_class(project.organization_id, default_environment_class_id)
    if webhook_url and urlsplit(webhook_url).scheme not in ("http", "https"):
        raise InvalidArgument("webhook_url must be an http(s) URL", field="webhook_url")
    hour = PROJECT.daily_schedule_hour_utc
    if daily_schedule_hour_utc is not None and not (hour.min_value <= daily_schedule_hour_utc <= hour.max_value):
        raise InvalidArgument(hour.max_error(), field=hour.path)
    if executor_id is not None:
        _check_executor(project.organization_id, executor_id)
    project.name = name
    project.repository_url = validate_repository_url(repository_url)
    project.branch = branch
    project.devcontainer_path = _validate_devcontainer_path(devcontainer_path)
    project.default_environment_class_id = default_environment_class_id
    project.access_token = access_token or ""
    project.webhook_url = webhook_url or ""
    project.prebuilds_enabled = bool(prebuilds_enabled)
    project.prebuild_timeout = _validate_timeout(prebuild_timeout)
    project.daily_schedule_hour_utc = daily_schedule_hour_utc
    project.executor_id = executor_id
    project.enable_jetbrains_warmup = bool(enable_jetbrains_warmup)


# --- webhook secrets ---------------------------------------------------------------------------

WEBHOOK_SECRET_PREFIX = "whsec_"


def webhook_secret(project: Project) -> str:
    """The key a project's webhook bodies are signed with (HMAC-SHA256), so a receiver can tell
    they come from here.

    Derived, not stored: an HMAC of SECRET_KEY over the project id and a random per-project nonce.
    A database dump alone (which has the nonce) does not give it, nothing needs decrypting, and
    rotating is replacing the nonce. The price: changing SECRET_KEY changes every project's secret
    (as it logs everyone out), and receivers must then be given the new ones."""
    digest = salted_hmac(
        "projects.webhook-secret", f"{project.id}:{project.webhook_secret_nonce}", algorithm="sha256"
    ).hexdigest()
    return WEBHOOK_SECRET_PREFIX + digest


def project_rotate_webhook_secret(*, actor, project: Project) -> str:
    """A new webhook secret for the project (the old one stops working at once), returned so that
    the admin who asked can be shown it once; nothing shows it again."""
    require_admin(actor, project.organization_id, "rotate webhook secrets")
    nonce = new_webhook_secret_nonce()
    Project.objects.filter(pk=project.pk).update(webhook_secret_nonce=nonce, updated_at=timezone.now())
    project.webhook_secret_nonce = nonce
    return webhook_secret(project)


# --- API tokens -------------------------------------------------------------------------------


def _hash_token(secret: str) -> str:
    # Tokens carry 256 bits of randomness, so a plain SHA-256 is enough: no salt or slow hash needed.
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_create(
    *, user, name: str, expires_in: timedelta | None = None, now: datetime | None = None
) -> tuple[ApiToken, str]:
    """A new token and its secret. The secret is returned once and never stored. It expires
    `expires_in` after `now` (the request's clock; the wall clock when not given)."""
    name = (name or "").strip()
    if not name:
        raise InvalidArgument("name must not be empty", field="name")
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidArgument("expiry must be in the future", field="expires_in")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        token_hash=_hash_token(secret),
        expires_at=(now or timezone.now()) + expires_in if expires_in else None,
    )
    return token, secret


def api_token_revoke(*, actor, token: ApiToken) -> ApiToken:
    if token.user_id != actor.pk:
        raise NotFound("token not found")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    cache.delete(_token_cache_key(token.token_hash))
    return token


# How long a server trusts a token it has checked (and its user's roles) before reading them again.
# Revoking a token, saving its user (deactivation) and changing the user's memberships drop the
# entry at once, in every process when the cache is Redis (production); with the per-process
# development cache another process may go on trusting it this long.
API_TOKEN_CACHE_SECONDS = 10


def _token_cache_key(token_hash: str) -> str:
    return f"api-token:{token_hash}"


# The cache (Redis in production) is shared by every server process, and whoever can write to it
# must not be able to authenticate as anyone: an entry is plain data (never a pickled object), signed
# with the secret key; one that does not verify is a miss.
_TOKEN_CACHE_SALT = "projects.api-token-cache"


@functools.cache
def _user_cache_fields():
    # Every column but the password hash, which has no business in a cache.
    return [f for f in get_user_model()._meta.concrete_fields if f.attname != "password"]


def _plain(value):
    return str(value) if isinstance(value, uuid.UUID) else value.isoformat() if hasattr(value, "isoformat") else value


def _token_cache_dump(user, roles: dict, expires_at) -> str:
    data = {
        "user": {f.attname: _plain(getattr(user, f.attname)) for f in _user_cache_fields()},
        "roles": {str(org_id): role for org_id, role in roles.items()},
        "expires_at": _plain(expires_at),
    }
    return signing.dumps(data, salt=_TOKEN_CACHE_SALT, compress=False)


def _token_cache_load(value):
    """(user, roles, expires_at) from a cache entry; None when it is missing or not ours."""
    if not isinstance(value, str):
        return None
    try:
        data = signing.loads(value, salt=_TOKEN_CACHE_SALT)
        fields = _user_cache_fields()
        values = [None if data["user"][f.attname] is None else f.to_python(data["user"][f.attname]) for f in fields]
        user = get_user_model().from_db(router.db_for_read(get_user_model()), [f.attname for f in fields], values)
        org_pk = Organization._meta.pk
        roles = {org_pk.to_python(org_id): role for org_id, role in data["roles"].items()}
        expires_at = data["expires_at"] and datetime.fromisoformat(data["expires_at"])
    except (signing.BadSignature, KeyError, TypeError, ValueError, ValidationError):
        return None
    return user, roles, expires_at


def api_token_authenticate(secret: str, *, now: datetime | None = None):
    """The user a bearer token belongs to, or Unauthenticated. Expiry is judged at `now` (the
    request's clock; the wall clock when not given).

    Every API request starts here, so a checked token is remembered for a few seconds: the lookup
    (a query joining the user) would otherwise cost more than many a request's own work."""
    if not secret or not secret.startswith(TOKEN_PREFIX):
        raise Unauthenticated("invalid API token")
    token_hash = _hash_token(secret)
    now = now or timezone.now()
    cached = _token_cache_load(cache.get(_token_cache_key(token_hash)))
    if cached is not None:
        user, roles, expires_at = cached
        if expires_at is None or expires_at > now:
            # The roles come along: the request's visibility filters need them next.
            user.set_organization_roles(roles)
            return user
    # The password hash is left out: the user is kept in the cache (Redis in production), and it
    # has no business there. (A save of a partly loaded user writes only the loaded fields.)
    token = (
        ApiToken.objects.active(now)
        .select_related("user")
        .defer("user__password")
        .filter(token_hash=token_hash)
        .first()
    )
    if token is None or not token.user.is_active:
        raise Unauthenticated("invalid, expired or revoked API token")
    # Written at most once a minute per token, so busy automation does not turn reads into writes.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    user = token.user
    entry = _token_cache_dump(user, user.organization_roles, token.expires_at)
    cache.set(_token_cache_key(token_hash), entry, API_TOKEN_CACHE_SECONDS)
    return user


def api_tokens_forget(user_id) -> None:
    """Make the next request with any of the user's tokens read the database again (the user
    changed: deactivated, say, or given another role). Called when a user or membership is saved."""
    hashes = ApiToken.objects.filter(user_id=user_id).values_list("token_hash", flat=True)
    cache.delete_many([_token_cache_key(token_hash) for token_hash in hashes])


# --- organization and project secrets ---------------------------------------------------------
# Admins write them; members list names and scopes; outsiders get NotFound. Values are write-only:
# stored encrypted (projects.secrets), read back only by secrets_in_force for a run's injection.

SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SECRET_NAME_MAX = 128
SECRET_VALUE_MAX = 64 * 1024


def validate_secret(*, name: str, value: str | None, scope: str) -> tuple[str, str | None, str]:
    """The one place a secret's fields are checked. Messages never include the value."""
    name = (name or "").strip()
    if not SECRET_NAME.fullmatch(name) or len(name) > SECRET_NAME_MAX:
        raise InvalidArgument(
            "name must be an environment variable name (letters, digits and _, not starting with a digit)",
            field="name",
        )
    if scope not in SecretScope.values:
        raise InvalidArgument(f"scope must be one of {', '.join(SecretScope.values)}", field="scope")
    if value is not None:
        if not isinstance(value, str) or len(value) < MIN_MASKED_LENGTH:
            # Shorter values could not be masked in logs without masking ordinary words.
            raise InvalidArgument(f"value must have at least {MIN_MASKED_LENGTH} characters", field="value")
        if len(value) > SECRET_VALUE_MAX:
            raise InvalidArgument(f"value must have at most {SECRET_VALUE_MAX} characters", field="value")
        if "\x00" in value:
            raise InvalidArgument("value must not contain NUL characters", field="value")
    return name, value, scope


def _secret_owner(organization: Organization | None, project: Project | None) -> tuple:
    if project is not None:
        return project.organization_id, project
    return organization.id, None


def secrets_list(*, user, organization: Organization | None = None, project: Project | None = None):
    """The organization's (or the project's) secrets: names and scopes for any member."""
    organization_id, project = _secret_owner(organization, project)
    require_member(user, organization_id)
    rows = Secret.objects.of_project(project.pk) if project else Secret.objects.of_organization(organization_id)
    return rows.defer("encrypted_value")


def secret_changes(*, user, organization: Organization | None = None, project: Project | None = None):
    organization_id, project = _secret_owner(organization, project)
    require_member(user, organization_id)
    rows = SecretChange.objects.filter(organization_id=organization_id).select_related("actor")
    return rows.filter(project=project) if project else rows.filter(project__isnull=True)


def secret_get(*, user, secret_id, organization: Organization | None = None, project: Project | None = None):
    return get_by_id(
        secrets_list(user=user, organization=organization, project=project),
        secret_id,
        label="secret",
        field="secret_id",
    )


def secret_get_any(*, user, secret_id) -> Secret:
    """A secret of an organization the user belongs to (organization or project level), by id;
    NotFound otherwise."""
    rows = Secret.objects.filter(organization_id__in=list(user.organization_roles) if user.is_authenticated else [])
    return get_by_id(rows.defer("encrypted_value"), secret_id, label="secret", field="secret_id")


@transaction.atomic
def secret_set(
    *,
    actor,
    name: str,
    value: str,
    scope: str = SecretScope.BOTH,
    organization: Organization | None = None,
    project: Project | None = None,
) -> Secret:
    """Create the secret, or replace the value and scope of the one of that name."""
    organization_id, project = _secret_owner(organization, project)
    require_admin(actor, organization_id, "change secrets")
    name, value, scope = validate_secret(name=name, value=value, scope=scope)
    rows = Secret.objects.of_project(project.pk) if project else Secret.objects.of_organization(organization_id)
    secret = rows.select_for_update().filter(name=name).first()
    action = SecretAction.REPLACED if secret else SecretAction.CREATED
    if secret is None:
        secret = Secret(organization_id=organization_id, project=project, name=name)
    secret.encrypted_value = secret_crypto.encrypt(value)
    secret.scope = scope
    try:
        with transaction.atomic():
            secret.save()
    except IntegrityError:
        raise AlreadyExists(f"a secret named {name!r} already exists", field="name") from None
    SecretChange.objects.create(
        organization_id=organization_id, project=project, name=name, action=action, scope=scope, actor=actor
    )
    return secret


@transaction.atomic
def secret_delete(*, actor, secret: Secret) -> None:
    require_admin(actor, secret.organization_id, "change secrets")
    deleted, _ = Secret.objects.filter(pk=secret.pk).delete()
    if deleted:
        SecretChange.objects.create(
            organization_id=secret.organization_id,
            project_id=secret.project_id,
            name=secret.name,
            action=SecretAction.DELETED,
            scope=secret.scope,
            actor=actor,
        )


def secrets_rotate_key() -> int:
    """Re-encrypt every secret with the newest key of SECRETS_ENCRYPTION_KEYS; the count."""
    count = 0
    with transaction.atomic():
        for secret in Secret.objects.select_for_update().only("id", "encrypted_value"):
            Secret.objects.filter(pk=secret.pk).update(encrypted_value=secret_crypto.rotate(secret.encrypted_value))
            count += 1
    return count


def secrets_in_force(project: Project, scope: str) -> dict[str, str]:
    """{name: value} for a run of the project in `scope` (prebuilds or environments): the
    organization's secrets, overridden by the project's of the same name. No access check: the
    caller is the run itself (the worker), never a person's request."""
    if scope not in (SecretScope.PREBUILDS, SecretScope.ENVIRONMENTS):
        raise ValueError(f"scope must be prebuilds or environments, not {scope!r}")
    values: dict[str, str] = {}
    # The organization's first, so the project's overwrite them.
    for rows in (Secret.objects.of_organization(project.organization_id), Secret.objects.of_project(project.pk)):
        for name, token in rows.for_scope(scope).values_list("name", "encrypted_value"):
            values[name] = secret_crypto.decrypt(token)
    return values


def environment_secret_env(project: Project) -> dict[str, str]:
    """The environment variables an environment's commands get (secrets scoped to environments).
    The environments side calls this when it starts a command in an environment's container; the
    values go into the command's environment (podman exec --env-file, or -e NAME with the value in
    podman's own environment), never onto a command line."""
    return secrets_in_force(project, SecretScope.ENVIRONMENTS)


def prebuild_secret_env(project: Project) -> dict[str, str]:
    """The environment variables a prebuild's lifecycle commands get (secrets scoped to prebuilds)."""
    return secrets_in_force(project, SecretScope.PREBUILDS)
