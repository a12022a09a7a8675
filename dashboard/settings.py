"""One settings module for every environment: everything that differs comes from the environment.

With nothing set, the site runs on SQLite and an embedded broker under ./var; with DATABASE_URL and
CELERY_BROKER_URL set, it runs on PostgreSQL and Redis; PRODUCTION=1 adds the hardening.

It reads top to bottom, one section per concern, and each setting is defined once, in its section
(a later section may read an earlier one's values, never change them).
"""

import ipaddress
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

from dashboard.config import (
    database_config,
    env_bool,
    env_host_list,
    env_int,
    env_list,
    env_path_list,
    env_str,
    sandbox_private_networks,
    secret_key,
    secrets_encryption_keys,
    tighten_data_dir,
    use_private_umask,
)

# First, before anything is created: every process of the product imports this module.
use_private_umask()

# --- Where the product keeps its files ----------------------------------------------------------
BASE_DIR = Path(__file__).resolve().parent.parent

if env_str("DATA_DIR"):
    DATA_DIR = Path(env_str("DATA_DIR")).resolve()
elif os.environ.get("PYTEST_VERSION"):
    # A test run never touches the developer's ./var (database, broker queue, workspaces).
    DATA_DIR = Path(tempfile.mkdtemp(prefix="prebuilds-test-"))
else:
    DATA_DIR = (BASE_DIR / "var").resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

WORKSPACES_DIR = DATA_DIR / "workspaces"
SNAPSHOTS_DIR = Path(env_str("SNAPSHOTS_DIR") or DATA_DIR / "snapshots").resolve()
# Warm pool instances live on the runner's disk; a separate volume may hold them.
POOLS_DIR = Path(env_str("POOLS_DIR") or DATA_DIR / "pools").resolve()
DEMO_REPOSITORY_DIR = DATA_DIR / "demo-repo"
BROKER_DIR = DATA_DIR / "broker"
# The container backend's files on the runner: podman's configuration, the OCI layout that caches
# base images, each run's guard state, and the embedded registry's storage.
CONTAINERS_DIR = DATA_DIR / "containers"

# --- The site -----------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)
# Development keeps a generated key in the data dir; a production deployment says so explicitly.
PRODUCTION = env_bool("PRODUCTION", False)
SECRET_KEY = secret_key(DATA_DIR, debug_default_allowed=not PRODUCTION)
# Keys of the project and organization secrets (projects.secrets), newest first.
SECRETS_ENCRYPTION_KEYS = secrets_encryption_keys(DATA_DIR, debug_default_allowed=not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when PRODUCTION=1")
# `check --deploy` asks for 50 characters; config.secret_key only knows the development floor.
if PRODUCTION and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5):
    raise ImproperlyConfigured("SECRET_KEY must have at least 50 characters (and 5 distinct ones) in production")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)
SITE_URL = env_str("SITE_URL", f"http://127.0.0.1:{PORT}").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from here: no CDN
    "projects",
    "prebuilds",
    "warmpools",
    "dashboard",
    "axes",  # login throttling (see Logins below)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Right after SecurityMiddleware, so that every response (static files included) carries it.
    "dashboard.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as axes asks: it turns the "locked out" flag set during authentication into the page below.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.context_processors.dashboard",
                "dashboard.context_processors.phases",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# xterm.js for the environment terminal, served from node_modules (pinned in package-lock.json,
# installed by `make install`'s npm ci) like any static file of ours: no CDN, no copy to keep in step.
for _prefix, _folder in (("vendor/xterm", "@xterm/xterm"), ("vendor/xterm-addon-fit", "@xterm/addon-fit")):
    if (BASE_DIR / "node_modules" / _folder).is_dir():
        STATICFILES_DIRS.append((_prefix, BASE_DIR / "node_modules" / _folder))
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# Static files are served by whitenoise straight from the apps' folders, so `make run` needs no
# collectstatic step.
WHITENOISE_USE_FINDERS = True

# --- Database and cache -------------------------------------------------------------------------
DATABASES = {"default": database_config(env_str("DATABASE_URL"), DATA_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# With no broker configured, kombu's filesystem transport under the data dir: needs no server,
# and the web server and the worker (separate processes) share it. (Celery's other settings are
# below; the cache needs to know the broker first.)
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "filesystem://"
_redis_broker = CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
if not _redis_broker and not CELERY_BROKER_URL.startswith("filesystem://"):
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL has an unsupported scheme: use redis://host:6379/0 (got {CELERY_BROKER_URL!r})"
    )

# The cache holds API throttle counters: shared through Redis when there is one, so every server
# process counts against the same budget; per process otherwise.
# It uses the next Redis database, so that clearing the cache can never drop queued tasks.
# Values are JSON, never pickle (dashboard/cache.py says why); the local-memory cache pickles, but
# only its own process can write to it.
if _redis_broker:
    _broker = urlsplit(CELERY_BROKER_URL)
    _cache_db = (int(_broker.path.strip("/") or 0) + 1) % 16
    CACHES = {
        "default": {
            "BACKEND": "dashboard.cache.JSONRedisCache",
            "LOCATION": urlunsplit(_broker._replace(path=f"/{_cache_db}")),
            "OPTIONS": {"serializer": "dashboard.cache.JSONSerializer"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Accounts and logins --------------------------------------------------------------------------
AUTH_USER_MODEL = "projects.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"

# Logins are throttled per account and per client address (django-axes). Its backend goes first:
# it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
# A list is an OR: the failures of one account (from any number of addresses: a distributed guess)
# and the failures from one address (at any number of accounts: a password spray) each lock on their
# own. The price: anyone can lock an account for the cool-off by failing at it, which is why it is
# a cool-off and not a permanent lock.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A success does not wipe the count: with it, someone holding one account could log in between
# guesses and spray from their address for ever.
AXES_RESET_ON_SUCCESS = False
# A page of the dashboard's (templates/registration/locked_out.html), not axes' plain text.
AXES_LOCKOUT_CALLABLE = "dashboard.lockout.locked_out"
AXES_HTTP_RESPONSE_CODE = 429
# The address is the one the API-token throttle uses too: REMOTE_ADDR, or the proxy's last
# X-Forwarded-For entry when TLS_TERMINATED_BY_PROXY says there is a proxy that sets it.
AXES_CLIENT_IP_CALLABLE = "projects.authentication.client_address"
# The form data axes stores with an attempt (shown in the admin) masks these; `password` always.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "password", "csrfmiddlewaretoken"]

# --- HTTPS, headers and production hardening ----------------------------------------------------
# Scripts, styles, images and fetches from this site only; no inline script or style, no framing.
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)

# Set when a reverse proxy terminates TLS and passes X-Forwarded-Proto: only then may Django trust
# that header (a client could send it too when nothing strips it).
TLS_TERMINATED_BY_PROXY = env_bool("TLS_TERMINATED_BY_PROXY", False)
if TLS_TERMINATED_BY_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Load balancers and Prometheus call these over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    # Preload only adds the header's flag; submitting the domain to browsers' lists stays a choice.
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_HTTPONLY = True
    X_FRAME_OPTIONS = "DENY"
    CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [SITE_URL] if SITE_URL.startswith("https://") else [])

# --- Celery ---------------------------------------------------------------------------------------
if _redis_broker:
    # A message whose worker died is redelivered after this long: longer than any prebuild
    # (2 h), so a slow prebuild is never handed to a second worker while the first still runs.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3 * 3600}
else:
    for _folder in ("queue", "processed", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        "control_folder": str(BROKER_DIR / "control"),
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "control"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Prebuilds, warm pools and the runner -------------------------------------------------------
# Lifecycle commands run under bubblewrap; without it the runner refuses to run them unless this
# is set explicitly (a weaker mode: process group, scrubbed environment and rlimits only).
RUNNER_ALLOW_UNSANDBOXED = env_bool("RUNNER_ALLOW_UNSANDBOXED", False)
# A class that allows network reaches the outside only: never the runner host, link-local addresses
# or (unless listed here, e.g. "10.20.0.0/16,192.168.5.0/24") the private ranges (runner/netns.py).
SANDBOX_ALLOWED_PRIVATE_NETWORKS = sandbox_private_networks("SANDBOX_ALLOWED_PRIVATE_NETWORKS")
# Each running prebuild or workspace build gets a host uid of its own from this range (runner.uids),
# so that one tenant's processes and files are not another's. The locks live in a root-only folder.
RUNNER_SANDBOX_UID_FIRST = env_int("RUNNER_SANDBOX_UID_FIRST", 61000, minimum=1000)
RUNNER_SANDBOX_UIDS = env_int("RUNNER_SANDBOX_UIDS", 256, minimum=1, maximum=65536)
RUNNER_SANDBOX_UID_LOCK_DIR = Path(env_str("RUNNER_SANDBOX_UID_LOCK_DIR") or DATA_DIR / "sandbox-uids").resolve()
# A running prebuild whose worker has not written a heartbeat for this long is failed "runner lost".
# The environment terminal (warmpools/terminal.py): a session with no keystroke for this long is
# ended (its shell killed in the container).
TERMINAL_IDLE_TIMEOUT_SECONDS = env_int("TERMINAL_IDLE_TIMEOUT_SECONDS", 1800, minimum=1)
# Pages, REST, Connect and the terminal's websocket from one ASGI application (dashboard/asgi.py).
ASGI_APPLICATION = "dashboard.asgi.application"
PREBUILD_HEARTBEAT_TIMEOUT = timedelta(seconds=env_int("PREBUILD_HEARTBEAT_TIMEOUT_SECONDS", 60, minimum=5))
# A PENDING prebuild older than this is sent to its queue again (its message may have been lost).
PREBUILD_REQUEUE_AFTER = timedelta(seconds=env_int("PREBUILD_REQUEUE_AFTER_SECONDS", 120, minimum=5))
REAPER_INTERVAL_SECONDS = env_int("REAPER_INTERVAL_SECONDS", 15, minimum=1)
PREBUILD_RETENTION = timedelta(days=env_int("PREBUILD_RETENTION_DAYS", 7, minimum=1))
# Scheduled prebuilds of one hour start spread over this many minutes, to even out the load.
SCHEDULE_SPREAD_MINUTES = env_int("SCHEDULE_SPREAD_MINUTES", 10, minimum=1, maximum=59)
SCHEDULE_PAUSE_AFTER_FAILURES = 3
PREBUILD_MAX_TIMEOUT = timedelta(hours=2)
PREBUILD_DEFAULT_TIMEOUT = timedelta(hours=1)
PROJECT_MIN_PREBUILD_TIMEOUT = timedelta(minutes=5)
# (A pool's largest size is part of its request shape: warmpools/shapes.py.)

# The container backend (a runner whose backend is "podman"): the reference Dev Containers CLI on
# podman, snapshots as OCI images in a registry. Images come through podman with the host's own
# registry configuration (registries.conf, auth.json); CONTAINER_REGISTRIES_CONF names another file.
CONTAINER_CLI = Path(env_str("CONTAINER_CLI") or BASE_DIR / "node_modules" / ".bin" / "devcontainer")
CONTAINER_REGISTRIES_CONF = Path(env_str("CONTAINER_REGISTRIES_CONF")) if env_str("CONTAINER_REGISTRIES_CONF") else None
# Where snapshots are pushed: host:port of an OCI registry, plain HTTP unless CONTAINER_REGISTRY_TLS.
# Empty: the embedded registry (Debian's docker-registry under the data dir, started by `serve`).
CONTAINER_REGISTRY = env_str("CONTAINER_REGISTRY", "")
CONTAINER_REGISTRY_TLS = env_bool("CONTAINER_REGISTRY_TLS", False)
CONTAINER_REGISTRY_GC_INTERVAL_SECONDS = env_int("CONTAINER_REGISTRY_GC_INTERVAL_SECONDS", 86400, minimum=60)
CONTAINER_EMBEDDED_REGISTRY_PORT = env_int("CONTAINER_EMBEDDED_REGISTRY_PORT", 5055, minimum=1, maximum=65535)
# The image of a repository without devcontainer.json (Codespaces and Ona start a default one too).
CONTAINER_DEFAULT_IMAGE = env_str("CONTAINER_DEFAULT_IMAGE", "mcr.microsoft.com/devcontainers/base:bookworm")

# Periodic work, run by beat on the control queue.
CELERY_BEAT_SCHEDULE = {
    "reap-prebuilds": {"task": "prebuilds.tasks.reap", "schedule": float(REAPER_INTERVAL_SECONDS)},
    "schedule-prebuilds": {"task": "prebuilds.tasks.schedule_prebuilds", "schedule": 60.0},
    "expire-prebuilds": {"task": "prebuilds.tasks.expire_prebuilds", "schedule": 3600.0},
    "reconcile-warm-pools": {"task": "warmpools.tasks.reconcile_all", "schedule": 30.0},
    # The embedded registry frees the layers of deleted snapshots (a few seconds without the registry).
    "collect-registry-garbage": {
        "task": "prebuilds.tasks.collect_registry_garbage",
        "schedule": float(CONTAINER_REGISTRY_GC_INTERVAL_SECONDS),
    },
}

# --- Where repositories and webhooks may point ----------------------------------------------------
# A local repository (absolute path or file:// URL) is accepted, and cloned, only from inside one of
# REPOSITORY_LOCAL_ROOTS, after symlinks are resolved: a shared runner's disk holds other
# organizations' repositories. Development admits the demo repository only, production nothing
# (use https:// there, or name the folders of repositories every organization may use).
if os.environ.get("PYTEST_VERSION") and "REPOSITORY_LOCAL_ROOTS" not in os.environ:
    # The suite's fixtures name /srv/... paths and make sample repositories under /tmp: a test run
    # admits any folder but the data directory and the stores (the tests of the rule narrow it),
    # and tells the workers and servers it starts (which do not see PYTEST_VERSION) the same.
    os.environ["REPOSITORY_LOCAL_ROOTS"] = "/"
REPOSITORY_LOCAL_ROOTS = env_path_list("REPOSITORY_LOCAL_ROOTS", [])
if not PRODUCTION and os.path.realpath(DEMO_REPOSITORY_DIR) not in REPOSITORY_LOCAL_ROOTS:
    # Development always admits its own demo repository (whatever the data directory is), so that
    # `make run` works beside any roots an operator names; production only what it names.
    REPOSITORY_LOCAL_ROOTS.append(os.path.realpath(DEMO_REPOSITORY_DIR))
# Never a repository, whatever the roots say: the product's data, snapshots, pools and workspaces.
REPOSITORY_FORBIDDEN_ROOTS = [os.path.realpath(p) for p in (DATA_DIR, SNAPSHOTS_DIR, POOLS_DIR, WORKSPACES_DIR)]
for _root in REPOSITORY_LOCAL_ROOTS:
    if _root == os.path.realpath(DEMO_REPOSITORY_DIR):
        continue  # the one folder inside the data directory that may be named
    for _forbidden in REPOSITORY_FORBIDDEN_ROOTS:
        if os.path.commonpath([_root, _forbidden]) == _forbidden:
            raise ImproperlyConfigured(
                f"REPOSITORY_LOCAL_ROOTS: {_root} lies inside {_forbidden}, which holds the product's own data"
            )

# Webhooks go only to public addresses; these host names or IP addresses may be internal ones.
WEBHOOK_ALLOWED_HOSTS = env_host_list("WEBHOOK_ALLOWED_HOSTS", [])
WEBHOOK_TIMEOUT_SECONDS = 5

# --- The APIs (REST and Connect) ----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # API tokens for automation (the Connect API uses the same function); sessions, with CSRF, for
    # the browsable API.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "projects.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Role rules live in the services (PermissionDenied -> 403); here only "signed in".
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # One budget per token (per user for a session), shared by REST and Connect. The cache is
    # Django's default (per process), so each server process counts on its own.
    "DEFAULT_THROTTLE_CLASSES": ["projects.authentication.ApiTokenThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api": "1200/min"},
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # Deeply nested JSON is a 400, not a RecursionError and a 500.
    "DEFAULT_PARSER_CLASSES": ["core.parsers.SafeJSONParser"],
    "EXCEPTION_HANDLER": "core.rest.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "TITLE": "Prebuilds and warm pools API",
    "VERSION": "1.0.0",
    "DESCRIPTION": (
        "REST API of the prebuild control plane. Prebuilds and warm pools have the field names and "
        "nesting of the gitpod.v1 Connect JSON form (camelCase, enums as names, durations such as "
        '"3600s", 64-bit integers as strings), and as there a field at its default value is left out. '
        "Their requests have the rules of the gitpod.v1 request messages (buf.validate). Authenticate "
        "with `Authorization: Bearer <API token>`. Lists take `page_size` (default 25, at most 100) and "
        "`token` (the previous page's `pagination.nextToken`, with the same filter; empty on the last page)."
    ),
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "PrebuildPhaseEnum": "prebuilds.proto.ALL_PHASE_NAMES",
        "WarmPoolPhaseEnum": "warmpools.proto.ALL_PHASE_NAMES",
    },
}

# Failed API-token authentications from one client address: this many in the window, and every
# token request from that address is refused (without looking at the token) until the window ends.
API_TOKEN_FAILURE_LIMIT = env_int("API_TOKEN_FAILURE_LIMIT", 20, minimum=1)
API_TOKEN_FAILURE_WINDOW_SECONDS = env_int("API_TOKEN_FAILURE_WINDOW_SECONDS", 300, minimum=1)

# --- Metrics and logs ---------------------------------------------------------------------------
# /metrics: a scraper with the bearer token, or a client from one of these networks (a request that
# came through a proxy, i.e. with X-Forwarded-For, is judged by the token only: its address is the
# proxy's). Empty METRICS_ALLOWED_NETWORKS and no token: nobody. In production the default is the
# token only: every local process (a lifecycle command, were it ever to reach the host) is loopback.
METRICS_TOKEN = env_str("METRICS_TOKEN")
_networks = os.environ.get("METRICS_ALLOWED_NETWORKS")
if _networks is not None and not _networks.strip():
    _networks = []  # set but empty: the token only
else:
    _networks = env_list("METRICS_ALLOWED_NETWORKS", [] if PRODUCTION else ["127.0.0.1/32", "::1/128"])
try:
    METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network(net, strict=False) for net in _networks]
except ValueError as exc:
    raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {exc}") from None

# Structured logs: JSON lines in production (or LOG_FORMAT=json), with the prebuild/pool id.
LOG_FORMAT = env_str("LOG_FORMAT", "json" if PRODUCTION else "plain").strip().lower()
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: use json or plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "dashboard.logging.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "dashboard.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO").upper()},
    # cel-python (protovalidate's CEL interpreter) logs each environment, activation and evaluation
    # at INFO under these names: noise in every request, and costly.
    "loggers": {
        name: {"level": "WARNING"}
        for name in ("Environment", "InterpretedRunner", "NameContainer", "Evaluator", "evaluation", "celtypes")
    },
}

# --- Last: private files --------------------------------------------------------------------------
# What an earlier version or umask left in the data dir becomes private (config.tighten_data_dir),
# once every folder above exists.
tighten_data_dir(DATA_DIR, SNAPSHOTS_DIR, POOLS_DIR)
