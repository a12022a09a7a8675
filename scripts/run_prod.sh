#!/usr/bin/env bash
# `make run-prod`: the production topology on one machine, from Debian's PostgreSQL and Redis.
#
#   PostgreSQL (Debian cluster)   Redis   gunicorn (TLS)   one Celery worker per runner queue
#   + one worker for the control queue   one beat
#
# Every process runs with PRODUCTION=1, DATABASE_URL and CELERY_BROKER_URL, as on separate hosts
# (README "Production" gives the command for each part). Secrets (the database and Redis passwords
# inside those URLs, the secret key, the metrics token) are files in DATA_DIR (0600) passed as
# *_FILE, so that no process has them in its environment or on its command line. Migrations and demo data come first. One
# Ctrl-C stops everything this script started (PostgreSQL and Redis only if it started them); a
# process that exits on its own is started again.
#
# Settings (environment): PORT (8443), HOST (127.0.0.1), REDIS_PORT (6379), DATA_DIR (var/prod),
# WORKER_CONCURRENCY (2), PG_DATABASE (prebuilds_prod), PG_ROLE (prebuilds_prod).
set -euo pipefail
# Everything this script and its processes create (Redis's log, the TLS key, the secrets, the
# database files) is this user's alone; the Python processes set the same umask themselves.
umask 077
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python

PORT=${PORT:-8443}
HOST=${HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6379}
DATA_DIR=$(realpath -m "${DATA_DIR:-$ROOT/var/prod}")
WORKER_CONCURRENCY=${WORKER_CONCURRENCY:-2}
PG_DATABASE=${PG_DATABASE:-prebuilds_prod}
PG_ROLE=${PG_ROLE:-prebuilds_prod}
mkdir -p "$DATA_DIR"
chmod 0711 "$DATA_DIR" # the sandbox user traverses it to reach workspaces; nothing else

pids=()
started_pg=""
started_redis=""

stop_all() {
    trap - INT TERM EXIT
    echo "== stopping"
    local pid
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for _ in $(seq 1 30); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.5
    done
    for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    if [ -n "$started_redis" ]; then rcli shutdown nosave >/dev/null 2>&1 || true; fi
    if [ -n "$started_pg" ]; then pg_ctlcluster "$started_pg" main stop || true; fi
}
trap 'stop_all; exit 130' INT TERM
trap stop_all EXIT

secret() { # a random secret kept in DATA_DIR (0600), made once
    local file=$DATA_DIR/$1
    if [ ! -s "$file" ]; then (umask 077 && "$PY" -c 'import secrets; print(secrets.token_urlsafe(64))' >"$file"); fi
    echo "$file"
}
private_file() { # NAME CONTENT: a file in DATA_DIR only we can read; prints its path
    local file=$DATA_DIR/$1
    (umask 077 && printf '%s\n' "$2" >"$file")
    echo "$file"
}
REDIS_PASSWORD=$(cat "$(secret redis_password)")
# The password reaches redis-cli through its environment, never its command line.
rcli() { REDISCLI_AUTH=$REDIS_PASSWORD redis-cli --no-auth-warning -p "$REDIS_PORT" "$@"; }

echo "== PostgreSQL"
PG_VERSION=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | grep -q "^${PG_VERSION} main .* online"; then
    pg_lsclusters -h | grep -q "^${PG_VERSION} main" || pg_createcluster "$PG_VERSION" main >/dev/null
    pg_ctlcluster "$PG_VERSION" main start
    started_pg=$PG_VERSION
fi
for _ in $(seq 1 30); do su postgres -c "pg_isready -q" && break; sleep 1; done
PG_PASSWORD=$(cat "$(secret pg_password)")
# Our own role (its password is ours to set); the database is created once.
su postgres -c "psql -q -v ON_ERROR_STOP=1" <<SQL
SELECT 'CREATE ROLE ${PG_ROLE} LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${PG_ROLE}')\gexec
ALTER ROLE ${PG_ROLE} WITH LOGIN PASSWORD '${PG_PASSWORD}';
SELECT 'CREATE DATABASE ${PG_DATABASE} OWNER ${PG_ROLE}'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '${PG_DATABASE}')\gexec
SQL

echo "== Redis"
# With a password (read from the configuration on stdin, so not on its command line): a process of
# the host that reaches 127.0.0.1 must not be able to read or write the queue and the cache.
if redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
    echo "a Redis without a password already listens on port $REDIS_PORT: stop it, or set REDIS_PORT" >&2
    exit 1
fi
if ! rcli ping 2>/dev/null | grep -q PONG; then
    if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
        echo "a Redis with another password already listens on port $REDIS_PORT: stop it, or set REDIS_PORT" >&2
        exit 1
    fi
    # No persistence: a lost message is re-sent by the reaper, and the database holds all state.
    redis-server - >/dev/null <<CONF
port $REDIS_PORT
bind 127.0.0.1
save ""
appendonly no
daemonize yes
logfile "$DATA_DIR/redis.log"
requirepass $REDIS_PASSWORD
CONF
    started_redis=1
    for _ in $(seq 1 30); do rcli ping 2>/dev/null | grep -q PONG && break; sleep 0.2; done
fi

echo "== TLS certificate (self-signed, for this machine only)"
mkdir -p "$DATA_DIR/tls"
if [ ! -s "$DATA_DIR/tls/cert.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$DATA_DIR/tls/key.pem" -out "$DATA_DIR/tls/cert.pem" 2>/dev/null
    chmod 600 "$DATA_DIR/tls/key.pem"
fi

export PRODUCTION=1
export DATA_DIR
unset DATABASE_URL CELERY_BROKER_URL SECRET_KEY METRICS_TOKEN SECRETS_ENCRYPTION_KEYS # the files below take their place
export DATABASE_URL_FILE
DATABASE_URL_FILE=$(private_file database_url "postgresql://${PG_ROLE}:${PG_PASSWORD}@127.0.0.1:5432/${PG_DATABASE}")
export CELERY_BROKER_URL_FILE
CELERY_BROKER_URL_FILE=$(private_file celery_broker_url "redis://:${REDIS_PASSWORD}@127.0.0.1:${REDIS_PORT}/0")
unset PG_PASSWORD
export SECRET_KEY_FILE
SECRET_KEY_FILE=$(secret secret_key_prod)
export METRICS_TOKEN_FILE
METRICS_TOKEN_FILE=$(secret metrics_token)
# The key that encrypts organization and project secrets at rest: a Fernet key, made once.
export SECRETS_ENCRYPTION_KEYS_FILE=$DATA_DIR/secrets_encryption_keys_prod
if [ ! -s "$SECRETS_ENCRYPTION_KEYS_FILE" ]; then
    (umask 077 && "$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' >"$SECRETS_ENCRYPTION_KEYS_FILE")
fi
export ALLOWED_HOSTS=${ALLOWED_HOSTS:-127.0.0.1,localhost}
export SITE_URL=${SITE_URL:-https://127.0.0.1:$PORT}
export PORT
# The demo project clones the generated demo repository; production admits no other local path.
export REPOSITORY_LOCAL_ROOTS=${REPOSITORY_LOCAL_ROOTS:-$DATA_DIR/demo-repo}

echo "== migrate, demo data, check --deploy"
"$PY" manage.py migrate --no-input -v 0
"$PY" manage.py demo_data
"$PY" manage.py check --deploy --fail-level WARNING

mapfile -t RUNNER_QUEUES < <("$PY" manage.py shell -v 0 -c \
    'from projects.models import Runner; print("\n".join(Runner.objects.order_by("queue").values_list("queue", flat=True)))')

names=()
commands=()
start() { # NAME ARGV...: remembered, so that it can be started again
    names+=("$1")
    shift
    commands+=("$(printf '%q ' "$@")")
    launch $((${#names[@]} - 1))
}
launch() { # INDEX: in its own session, so that one signal reaches it and its children
    local name=${names[$1]}
    # The prefixing sed ignores Ctrl-C: it ends when its process closes its output, not before.
    eval "exec setsid ${commands[$1]}" > >(trap '' INT TERM && exec sed -u "s/^/[$name] /") 2>&1 &
    pids[$1]=$!
}

# ASGI (dashboard/asgi.py) with uvicorn workers: pages, REST, Connect and the terminal's websocket.
start web "$PY" -m gunicorn dashboard.asgi:application --bind "$HOST:$PORT" \
    --certfile "$DATA_DIR/tls/cert.pem" --keyfile "$DATA_DIR/tls/key.pem" \
    --worker-class uvicorn_worker.UvicornWorker --workers 4 --graceful-timeout 10 --access-logfile -
for queue in control "${RUNNER_QUEUES[@]}"; do
    start "worker:$queue" "$PY" -m celery -A dashboard worker --queues "$queue" \
        --concurrency "$WORKER_CONCURRENCY" --prefetch-multiplier 1 --loglevel INFO \
        --hostname "$queue@%h"
done
start beat "$PY" -m celery -A dashboard beat --loglevel INFO --schedule "$DATA_DIR/celerybeat-schedule"

echo "== serving on https://$HOST:$PORT/ (self-signed certificate; queues: control ${RUNNER_QUEUES[*]})"
echo "   /metrics: with 'Authorization: Bearer \$(cat $METRICS_TOKEN_FILE)' (production trusts no address by itself)"
echo "   Press Ctrl-C to stop everything."
# A supervisor, as in a deployment (systemd Restart=always): a process that exits on its own (a
# worker can, when the broker goes away) is started again; Ctrl-C stops everything.
while true; do
    for i in "${!pids[@]}"; do
        if ! kill -0 "${pids[$i]}" 2>/dev/null; then
            echo "== ${names[$i]} exited; starting it again" >&2
            sleep 1
            launch "$i"
        fi
    done
    sleep 1
done
