#!/usr/bin/env python3
"""Dashboard benchmark (issue 5): server time of /prebuilds/ and of its refresh partial with many
prebuilds in the database, and log latency (write -> visible to a viewer) with 100 viewers.

    .venv/bin/python bench/bench_pages.py [--prebuilds N] [--viewers 100] [--seconds 20]

With DATABASE_URL pointing at PostgreSQL it uses a separate `<name>_bench` database with N
prebuilds (default 100,000), dropped at the end; without it, SQLite in a temporary data dir (default
20,000). The page is timed in-process (Django's test client: server time, no network); the log
viewers poll a gunicorn server on loopback the way the log panel does (every 500 ms, lines after
the last seen), while this process appends a timestamped line every 50 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import REPO, fresh_bench_database, pg_admin, prepare, start_gunicorn  # noqa: E402

POLL_SECONDS = 0.5
WARM_UP_SECONDS = 4.0


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else float("nan")


def time_pages(samples: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username="bench-admin"))
    results = {}
    for name, headers in (
        ("/prebuilds/ (full page)", {}),
        ("/prebuilds/ (refresh partial)", {"HX-Request": "true", "HX-Target": "prebuild-rows"}),
    ):
        client.get("/prebuilds/", headers=headers)  # warm up
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            response = client.get("/prebuilds/", headers=headers)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code in (200, 286), response.status_code
        results[name] = {"p50_ms": percentile(times, 0.5), "p95_ms": percentile(times, 0.95)}
    return results


def _viewers(port, prebuild_id, token, count, seconds, queue):
    """`count` log panels in this process, each polling with its own keep-alive connection."""
    latencies, lock = [], threading.Lock()
    deadline = time.time() + seconds

    def panel():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        after, mine = 0, []
        while time.time() < deadline:
            conn.request("GET", f"/logs/{prebuild_id}?after={after}", headers={"Authorization": f"Bearer {token}"})
            body = json.loads(conn.getresponse().read())
            seen = time.time()
            for line in body["lines"]:
                if after:  # the first poll catches up on history: not a live line
                    mine.append(seen - float(line["text"].split("=", 1)[1]))
                after = line["seq"]
            if not after:
                after = body["last"] or 0
            time.sleep(POLL_SECONDS)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=panel) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put(latencies)


def log_latency(port: int, viewers: int, seconds: float) -> dict:
    from prebuilds import logstore, services
    from prebuilds.models import Prebuild

    prebuild = Prebuild.objects.filter(phase=10).select_related("creator").first()  # a live (PENDING) one
    token = services.prebuild_create_logs_token(actor=prebuild.creator, prebuild=prebuild)
    processes = 4
    queue = multiprocessing.Queue()
    clients = [
        multiprocessing.Process(
            target=_viewers, args=(port, str(prebuild.id), token, viewers // processes, seconds, queue)
        )
        for _ in range(processes)
    ]
    for c in clients:
        c.start()
    # Let every viewer make its first requests before a line is written: a gunicorn worker's first
    # request loads the application and each thread opens its database connection (over a second
    # here), which is start-up, not log latency.
    time.sleep(WARM_UP_SECONDS)
    seq = logstore.next_seq(prebuild.id)
    deadline = time.time() + seconds - WARM_UP_SECONDS
    written = 0
    while time.time() < deadline:
        seq = logstore.append(prebuild.id, seq, [("onCreateCommand", "stdout", f"written at={time.time()}")])
        written += 1
        time.sleep(0.05)
    latencies = [x for _ in clients for x in queue.get()]
    for c in clients:
        c.join()
    return {
        "viewers": viewers,
        "lines_written": written,
        "observations": len(latencies),
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
    }


def main() -> int:
    database_url = os.environ.get("DATABASE_URL", "")
    postgres = database_url.startswith(("postgres://", "postgresql://"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prebuilds", type=int, default=100_000 if postgres else 20_000)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        DATA_DIR=str(data_dir),
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="dashboard.settings",
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",  # testserver: the in-process page timing
    )
    bench_url = None
    if postgres:
        bench_url = fresh_bench_database(database_url)
        env["DATABASE_URL"] = bench_url
    server = None
    try:
        seed = prepare(env, args.prebuilds)
        os.environ.update(env)
        if not postgres:
            os.environ.pop("DATABASE_URL", None)
        import django

        sys.path.insert(0, str(REPO))
        django.setup()
        print(f"database: {'PostgreSQL' if postgres else 'SQLite'} with {seed['count']:,} prebuilds")
        for name, r in time_pages(args.samples).items():
            print(f"{name:32s} server time p50 {r['p50_ms']:7.1f} ms   p95 {r['p95_ms']:7.1f} ms   (target <= 100 ms)")

        server, port = start_gunicorn(env, workers=2, threads=32)
        r = log_latency(port, args.viewers, args.seconds)
        print(
            f"log latency, {r['viewers']} viewers polling every {POLL_SECONDS}s: p50 {r['p50_ms']:.0f} ms, "
            f"p95 {r['p95_ms']:.0f} ms over {r['observations']} observations of {r['lines_written']} lines "
            "(target p95 <= 1000 ms)"
        )
        return 0
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        if bench_url:
            from django.db import connections

            connections.close_all()
            pg_admin(database_url, f'DROP DATABASE IF EXISTS "{urlsplit(bench_url).path.lstrip("/")}" WITH (FORCE)')
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
