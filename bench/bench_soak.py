#!/usr/bin/env python3
"""Soak benchmark: mixed load against the production topology on this machine (scripts/run_prod.sh:
PostgreSQL, Redis, gunicorn over TLS, a Celery worker per queue, beat), for a bounded time.

    SOAK=1 .venv/bin/python bench/bench_soak.py [--minutes 2]     # `make bench` skips it without SOAK=1
    SOAK=1 .venv/bin/python bench/bench_soak.py --minutes 30       # the real soak

Load, from threads on loopback only, each loop paced and stopped at the deadline: prebuild creates
(REST), cancels (REST), environment claims (the service layer: there is no endpoint for them yet),
page refreshes of a signed-in browser (overview, prebuild list, pools, a prebuild's page), log viewers
(logs token, then the tail of a prebuild's log) and a Prometheus scraper (/metrics).

Reports requests per second and p50/p99 latency of each kind, the memory (RSS) of every process of
the topology at the start and at the end, and the phase of every prebuild it created (all must be
terminal). Runs on its own data directory, database (prebuilds_soak, dropped at the end) and Redis
port, so that it disturbs nothing else on the machine.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTEXT = ssl._create_unverified_context()  # the topology's certificate is self-signed, on loopback


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter = Counter()

    def timed(self, kind: str, call):
        started = time.monotonic()
        try:
            result = call()
        except Exception as exc:  # counted and reported, never fatal to the load
            with self.lock:
                self.errors[f"{kind}: {type(exc).__name__}: {str(exc)[:80]}"] += 1
            return None
        with self.lock:
            self.latencies[kind].append(time.monotonic() - started)
        return result


class Client:
    """An HTTPS client with cookies (for the signed-in pages) or a bearer token (for the API)."""

    def __init__(self, base: str, token: str | None = None):
        self.base, self.token = base, token
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=CONTEXT),
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
        )

    def request(self, method: str, path: str, body=None, headers=None, bearer: str | None = None):
        headers = dict(headers or {})
        if bearer or self.token:
            headers["Authorization"] = f"Bearer {bearer or self.token}"
        data = None
        if isinstance(body, dict):
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif isinstance(body, bytes):
            data = body
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        with self.opener.open(request, timeout=30) as response:
            return response.status, response.read()

    def login(self, username: str, password: str) -> None:
        _, page = self.request("GET", "/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
        form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
        headers = {"Referer": self.base + "/login/", "Content-Type": "application/x-www-form-urlencoded"}
        self.request("POST", "/login/", form.encode(), headers)


def rss_by_process(root_pid: int) -> dict[str, int]:
    """RSS (KiB) of every process under root_pid, named by its role and pid."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[ppid].append(int(entry.name))
    result, stack = {}, [root_pid]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            cmdline = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")).decode()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if "gunicorn" in cmdline:
            role = "web"
        elif " beat " in cmdline:
            role = "beat"
        elif " worker " in cmdline and "--queues" in cmdline:
            role = "worker:" + cmdline.split("--queues ")[1].split()[0]
        else:
            continue
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) if "VmRSS" in status else 0
        result[f"{role} pid {pid}"] = rss
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 2)))
    args = parser.parse_args()
    if not os.environ.get("SOAK") and "--minutes" not in sys.argv:
        print("soak benchmark skipped: set SOAK=1 (and --minutes N, default 2) to run it")
        return 0

    data_dir = Path(tempfile.mkdtemp(prefix="soak-"))
    port, redis_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "PORT": str(port),
        "REDIS_PORT": str(redis_port),
        "PG_DATABASE": "prebuilds_soak",
        "DEMO_ADMIN_PASSWORD": "soak-admin-pw-1",
        "DEMO_MEMBER_PASSWORD": "soak-member-pw-1",
        "WORKER_CONCURRENCY": "2",
    }
    log = (data_dir / "topology.log").open("w")
    topology = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "run_prod.sh")], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
    )
    base = f"https://127.0.0.1:{port}"
    try:
        return soak(base, topology, data_dir, env, args.minutes)
    finally:
        topology.send_signal(signal.SIGINT)  # as Ctrl-C: the script stops what it started
        try:
            topology.wait(60)
        except subprocess.TimeoutExpired:
            topology.kill()
        subprocess.run(["su", "postgres", "-c", "dropdb --if-exists prebuilds_soak"], check=False)
        print(f"(topology log: {data_dir / 'topology.log'})")


def soak(base: str, topology: subprocess.Popen, data_dir: Path, env: dict, minutes: float) -> int:
    deadline = time.monotonic() + 180
    while True:
        if topology.poll() is not None:
            print((data_dir / "topology.log").read_text()[-3000:])
            raise SystemExit("the topology did not start")
        try:
            urllib.request.urlopen(base + "/healthz", context=CONTEXT, timeout=5).close()
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise SystemExit("the topology did not answer within 3 minutes") from None
            time.sleep(1)

    # This process talks to the same database through the service layer (claims, setup).
    os.environ.update(
        PRODUCTION="1",
        DATA_DIR=str(data_dir),
        DATABASE_URL=f"postgresql://prebuilds_prod:{(data_dir / 'pg_password').read_text().strip()}"
        "@127.0.0.1:5432/prebuilds_soak",
        # run_prod.sh's Redis has a password: the URL is in a file it wrote, as for its own processes.
        CELERY_BROKER_URL_FILE=str(data_dir / "celery_broker_url"),
        SECRET_KEY_FILE=str(data_dir / "secret_key_prod"),
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="dashboard.settings",
    )
    sys.path.insert(0, str(ROOT))
    import django
    import django.db

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from prebuilds.models import TERMINAL_PHASES, Prebuild
    from projects import services as project_services
    from projects.models import Project
    from warmpools import services as pool_services

    admin = get_user_model().objects.get(username="admin")
    project = Project.objects.get(name="demo")
    _, token = project_services.api_token_create(user=admin, name="soak")
    pool_services.warm_pool_create(
        actor=admin, project=project, environment_class_id=project.default_environment_class_id, min_size=1, max_size=3
    )

    recorder = Recorder()
    created: list[str] = []
    stop = threading.Event()
    started = time.monotonic()
    end = started + minutes * 60

    def loop(pace: float, work):
        rng = random.Random()
        while not stop.is_set() and time.monotonic() < end:
            work()
            stop.wait(pace * rng.uniform(0.5, 1.5))

    api = Client(base, token)

    def create():
        reply = recorder.timed(
            "create prebuild (REST)",
            lambda: api.request("POST", "/api/v1/prebuilds/", {"projectId": str(project.id), "spec": {}}),
        )
        if reply:
            created.append(json.loads(reply[1])["id"])

    def cancel():
        if len(created) > 2:
            target = random.choice(created[-5:])
            recorder.timed("cancel prebuild (REST)", lambda: api.request("POST", f"/api/v1/prebuilds/{target}/cancel/"))

    def claim():
        def work():
            environment = pool_services.environment_create(actor=admin, project=project)
            pool_services.environment_delete(actor=admin, environment=environment)
            return environment

        recorder.timed("claim environment (service)", work)
        connection.close()

    browser = Client(base)
    browser.login("member", "soak-member-pw-1")

    def pages():
        for path in ("/", "/prebuilds/", "/warm-pools/"):
            recorder.timed(f"page {path}", lambda p=path: browser.request("GET", p))
        if created:
            target = created[-1]
            recorder.timed("page /prebuilds/<id>/", lambda: browser.request("GET", f"/prebuilds/{target}/"))

    def logs():
        if not created:
            return
        target = random.choice(created[-10:])
        reply = recorder.timed(
            "logs token (REST)", lambda: api.request("POST", f"/api/v1/prebuilds/{target}/logs-token/")
        )
        if reply:
            logs_token = json.loads(reply[1])["accessToken"]
            recorder.timed("log tail", lambda: api.request("GET", f"/logs/{target}?tail=200", bearer=logs_token))

    def scrape():
        recorder.timed("/metrics", lambda: api.request("GET", "/metrics"))

    memory_start = rss_by_process(topology.pid)
    workers = [
        threading.Thread(target=loop, args=(pace, work), daemon=True)
        for pace, work in [
            (4.0, create),
            (9.0, cancel),
            (5.0, claim),
            (1.0, pages),
            (1.0, pages),
            (2.0, logs),
            (5.0, scrape),
        ]
    ]
    for thread in workers:
        thread.start()
    peak: dict[str, int] = dict(memory_start)
    # RSS at a third and two thirds of the run too, so that warm-up can be told from a leak.
    checkpoints = [started + (end - started) / 3, started + 2 * (end - started) / 3]
    memory_middle: list[dict[str, int]] = []
    while time.monotonic() < end:
        time.sleep(5)
        sample = rss_by_process(topology.pid)
        for name, rss in sample.items():
            peak[name] = max(peak.get(name, 0), rss)
        if checkpoints and time.monotonic() >= checkpoints[0]:
            checkpoints.pop(0)
            memory_middle.append(sample)
    stop.set()
    for thread in workers:
        thread.join(60)
    elapsed = time.monotonic() - started
    memory_end = rss_by_process(topology.pid)

    # Every prebuild must end terminal: give the queue time to drain.
    drain_deadline = time.monotonic() + 300
    while time.monotonic() < drain_deadline:
        phases = Counter(Prebuild.objects.filter(id__in=created).values_list("phase", flat=True))
        if all(phase in TERMINAL_PHASES for phase in phases):
            break
        time.sleep(2)
    drained = time.monotonic() - (started + elapsed)

    print(f"\nsoak: {elapsed / 60:.1f} min of mixed load on https://127.0.0.1 (loopback), then {drained:.0f}s to drain")
    print(f"{'kind':32} {'count':>6} {'per s':>7} {'p50 ms':>8} {'p99 ms':>8}")
    total = 0
    for kind, values in sorted(recorder.latencies.items()):
        total += len(values)
        print(
            f"{kind:32} {len(values):6d} {len(values) / elapsed:7.2f} "
            f"{percentile(values, 0.5) * 1000:8.1f} {percentile(values, 0.99) * 1000:8.1f}"
        )
    print(f"{'all':32} {total:6d} {total / elapsed:7.2f}")
    print(f"errors: {dict(recorder.errors) or 'none'}")
    print("\nmemory (RSS, MiB): start -> at 1/3 -> at 2/3 -> end (peak)  growth")
    for name in sorted(set(memory_start) | set(memory_end)):
        start_rss, end_rss = memory_start.get(name), memory_end.get(name)
        fmt = lambda v: f"{v / 1024:6.1f}" if v else "     -"  # noqa: E731
        growth = f"{(end_rss - start_rss) / 1024:+.1f}" if start_rss and end_rss else "(new or gone)"
        path = " -> ".join(fmt(rss) for rss in [start_rss, *(m.get(name) for m in memory_middle), end_rss])
        print(f"  {name:40} {path} ({fmt(peak.get(name))})  {growth}")
    by_phase = Counter(Prebuild(phase=p).get_phase_display() for p in phases.elements())
    terminal = all(phase in TERMINAL_PHASES for phase in phases)
    print(f"\nprebuilds created: {len(created)}; by phase: {dict(by_phase)}; all terminal: {terminal}")
    django.db.connections.close_all()  # so that the soak database can be dropped
    return 0 if terminal and not recorder.errors else 1


if __name__ == "__main__":
    sys.exit(main())
