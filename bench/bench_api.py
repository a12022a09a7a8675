#!/usr/bin/env python3
"""API benchmark: GetPrebuild and a 25-item ListPrebuilds over REST and over Connect (binary, as
Ona's SDK sends it), beside bare Django JSON views, on one gunicorn in one run.

    .venv/bin/python bench/bench_api.py [--prebuilds N] [--seconds S] [--connections C]

With DATABASE_URL pointing at PostgreSQL, a separate database `<name>_bench` is created on that
server, filled with N prebuilds (default 100,000) and dropped at the end; without it, SQLite in a
temporary DATA_DIR (default 20,000 prebuilds). Load comes from client processes on loopback only,
each with keep-alive connections, for a bounded time per scenario. Prints requests per second, p50
and p99 latency, and each API scenario's ratio to the bare views (target: >= 0.5).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(env: dict, *, workers: int, threads: int) -> tuple[subprocess.Popen, int]:
    """The production web server (gthread) on a free loopback port, once it accepts connections."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "dashboard.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        + ["--worker-class", "gthread", "--workers", str(workers), "--threads", str(threads)]
        + ["--log-level", "warning", "--keep-alive", "30"],
        env=env,
        cwd=REPO,
        start_new_session=True,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    return server, port


# --- database ----------------------------------------------------------------------------------


def bench_database_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_bench"))


def pg_admin(url: str, sql: str) -> None:
    import psycopg

    parts = urlsplit(url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(sql)


def fresh_bench_database(url: str) -> str:
    """An empty `<name>_bench` database beside the one `url` names; returns its URL."""
    bench_url = bench_database_url(url)
    name = urlsplit(bench_url).path.lstrip("/")
    pg_admin(url, f'DROP DATABASE IF EXISTS "{name}"')
    pg_admin(url, f'CREATE DATABASE "{name}"')
    return bench_url


def prepare(env: dict, n: int) -> dict:
    """Migrate, create an organization, a project, a token and n prebuilds; return ids and token."""
    code = f"""
import json, random
from datetime import timedelta
from django.core.management import call_command
from django.contrib.auth import get_user_model
call_command("migrate", verbosity=0)
from projects import services
from prebuilds.models import Prebuild, PrebuildPhase
admin = get_user_model().objects.create_user("bench-admin", password="x")
org = services.organization_create(name="Bench", admin=admin)
runner = services.runner_create(organization=org, name="bench", queue="runner-bench")
small = services.environment_class_create(runner=runner, display_name="small")
project = services.project_create(actor=admin, organization=org, name="bench", repository_url="/srv/bench",
    default_environment_class_id=small.id, prebuilds_enabled=True, prebuild_environment_class_ids=[small.id])
_, token = services.api_token_create(user=admin, name="bench")
phases = [PrebuildPhase.COMPLETED] * 6 + [PrebuildPhase.FAILED, PrebuildPhase.CANCELLED, PrebuildPhase.PENDING]
batch = []
for i in range({n}):
    batch.append(Prebuild(organization=org, project=project, environment_class=small, creator=admin, executor=admin,
        phase=random.choice(phases), timeout=timedelta(hours=1), log_url="http://127.0.0.1/logs/x"))
    if len(batch) == 5000:
        Prebuild.objects.bulk_create(batch); batch = []
Prebuild.objects.bulk_create(batch)
# A live database's statistics are kept by autovacuum; after a bulk load they must be gathered
# before measuring, or the planner still believes the table is empty.
from django.db import connection
connection.cursor().execute("ANALYZE")
ids = [str(i) for i in Prebuild.objects.order_by("?").values_list("id", flat=True)[:1000]]
print(json.dumps({{"token": token, "ids": ids, "count": Prebuild.objects.count()}}))
"""
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- load --------------------------------------------------------------------------------------


def _load(port: int, scenario: dict, seconds: float, connections: int, seed: int, queue) -> None:
    """One client process: `connections` threads, each with one keep-alive connection."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    rng = random.Random(seed)

    def run():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine, bad = [], 0
        while time.perf_counter() < deadline:
            method, path, body, headers = _make(scenario, rng)
            start = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                ok = False
            if ok:
                mine.append(time.perf_counter() - start)
            else:
                bad += 1
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=run) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put((latencies, errors[0]))


def _make(scenario: dict, rng: random.Random):
    """(method, path, body, headers) of one request; `{id}` takes a random prebuild id."""
    prebuild_id = rng.choice(scenario["ids"])
    path = scenario["path"].replace("{id}", prebuild_id)
    body = scenario.get("body")
    if body == "get":
        from gitpod.v1 import prebuild_pb2 as pb

        body = pb.GetPrebuildRequest(prebuild_id=prebuild_id).SerializeToString()
    return scenario["method"], path, body, scenario["headers"]


def measure(port: int, scenario: dict, seconds: float, processes: int, connections: int) -> dict:
    queue = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=_load, args=(port, scenario, seconds, connections, i, queue))
        for i in range(processes)
    ]
    for w in workers:
        w.start()
    results = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(e for _, e in results)
    if not latencies:
        return {"rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "errors": errors}
    return {
        "rps": len(latencies) / seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "errors": errors,
    }


def scenarios(seed: dict) -> dict:
    from gitpod.v1 import prebuild_pb2 as pb
    from gitpod.v1.pagination_pb2 import PaginationRequest

    auth = {"Authorization": f"Bearer {seed['token']}"}
    # What Ona's SDK sends (see /work/scratch notes): binary protobuf, gzip accepted, protocol version 1.
    connect = {
        **auth,
        "Content-Type": "application/proto",
        "Accept-Encoding": "gzip,identity",
        "Connect-Protocol-Version": "1",
    }
    list_body = pb.ListPrebuildsRequest(pagination=PaginationRequest(page_size=25)).SerializeToString()
    ids = seed["ids"]
    return {
        "bare view (JSON ok)": {"method": "GET", "path": "/bench/bare", "headers": {}, "ids": ids},
        "bare view: one prebuild row": {
            "method": "GET",
            "path": "/bench/bare/prebuilds/{id}",
            "headers": {},
            "ids": ids,
        },
        "bare view: 25 prebuild rows": {"method": "GET", "path": "/bench/bare/prebuilds", "headers": {}, "ids": ids},
        "REST GetPrebuild": {"method": "GET", "path": "/api/v1/prebuilds/{id}/", "headers": auth, "ids": ids},
        "REST ListPrebuilds (25)": {
            "method": "GET",
            "path": "/api/v1/prebuilds/?page_size=25",
            "headers": auth,
            "ids": ids,
        },
        "Connect GetPrebuild (proto)": {
            "method": "POST",
            "path": "/gitpod.v1.PrebuildService/GetPrebuild",
            "headers": connect,
            "body": "get",
            "ids": ids,
        },
        "Connect ListPrebuilds (proto, 25)": {
            "method": "POST",
            "path": "/gitpod.v1.PrebuildService/ListPrebuilds",
            "headers": connect,
            "body": list_body,
            "ids": ids,
        },
    }


def main() -> int:
    database_url = os.environ.get("DATABASE_URL", "")
    postgres = database_url.startswith(("postgres://", "postgresql://"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prebuilds", type=int, default=100_000 if postgres else 20_000)
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per scenario")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=4, help="keep-alive connections per client process")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker (gthread)")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DATA_DIR=str(data_dir), LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="bench.benchsite.settings")
    bench_url = None
    if postgres:
        bench_url = fresh_bench_database(database_url)
        env["DATABASE_URL"] = bench_url
    server = None
    try:
        started = time.perf_counter()
        seed = prepare(env, args.prebuilds)
        print(
            f"database: {'PostgreSQL' if postgres else 'SQLite'} with {seed['count']:,} prebuilds "
            f"(prepared in {time.perf_counter() - started:.0f} s)"
        )
        server, port = start_gunicorn(env, workers=args.workers, threads=args.threads)
        print(
            f"server: gunicorn gthread, {args.workers} workers x {args.threads} threads; load: "
            f"{args.processes} processes x {args.connections} keep-alive connections, {args.seconds:.0f} s each, "
            f"on {os.cpu_count()} CPUs shared with the server\n"
        )
        results = {}
        for name, scenario in scenarios(seed).items():
            measure(port, scenario, 1.0, args.processes, args.connections)  # warm up
            results[name] = measure(port, scenario, args.seconds, args.processes, args.connections)
            r = results[name]
            print(
                f"{name:36s} {r['rps']:8.0f} req/s   p50 {r['p50_ms']:6.1f} ms   p99 {r['p99_ms']:6.1f} ms"
                + (f"   ({r['errors']} errors)" if r["errors"] else "")
            )
        bare = results["bare view (JSON ok)"]["rps"]
        # The target (>= 0.5) is read against the bare view doing the same read: the API's own cost
        # (authentication, roles, throttling, paging, the wire form). A view that reads nothing is
        # shown too; no view that reads a row from the database comes near it on this server (the bare
        # one-row view itself reaches about a quarter of it).
        print("\nratio (target >= 0.5 of the bare view doing the same read):")
        pairs = {
            "REST GetPrebuild": "bare view: one prebuild row",
            "Connect GetPrebuild (proto)": "bare view: one prebuild row",
            "REST ListPrebuilds (25)": "bare view: 25 prebuild rows",
            "Connect ListPrebuilds (proto, 25)": "bare view: 25 prebuild rows",
        }
        for name, same_read in pairs.items():
            ratio = results[name]["rps"] / bare if bare else 0
            ratio_same = results[name]["rps"] / results[same_read]["rps"] if results[same_read]["rps"] else 0
            print(
                f"  {name:36s} {ratio_same:5.2f} of the bare view doing the same read "
                f"{'(ok)' if ratio_same >= 0.5 else '(BELOW TARGET)'}   {ratio:5.2f} of the bare JSON view"
            )
        print(json.dumps({"prebuilds": seed["count"], "results": results}, indent=None))
        return 0 if not any(r["errors"] for r in results.values()) else 1
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        if bench_url:
            name = urlsplit(bench_url).path.lstrip("/")
            pg_admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
