"""100 concurrent writes through the REST API, served by gunicorn (several processes and threads, as
deployed) on PostgreSQL: resizes of one warm pool and cancels of a few prebuilds. No update is lost,
spec versions strictly increase (one per accepted change), and the final state is the last accepted
write's."""

import json
import random
import sys
import urllib.error
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest

from prebuilds import services
from prebuilds.models import Prebuild, PrebuildPhase
from projects import services as project_services
from tests.conftest import subprocess_env
from tests.processes.faults.conftest import free_port, wait_until
from warmpools import services as pool_services
from warmpools.models import WarmPool

pytestmark = [pytest.mark.faults, pytest.mark.slow]

RESIZES, PREBUILDS, CANCELS_EACH = 60, 10, 4  # 60 + 10 * 4 = 100 requests


def post(url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body or {}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_100_concurrent_resizes_and_cancels_lose_no_update(org, processes):
    pool = pool_services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, min_size=0, max_size=1
    )
    prebuilds = [services.prebuild_create(actor=org.member, project=org.project) for _ in range(PREBUILDS)]
    _, token = project_services.api_token_create(user=org.admin, name="faults")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "gunicorn", "dashboard.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    processes.start("web", [*argv, "--worker-class", "gthread", "--workers", "3", "--threads", "8"], subprocess_env())
    wait_until(lambda: _answers(base), 60, "gunicorn answers")

    rng = random.Random(7)
    requests = []
    for _ in range(RESIZES):
        max_size = rng.randint(1, 20)
        requests.append(("resize", {"minSize": rng.randint(0, max_size), "maxSize": max_size}))
    requests += [("cancel", str(p.id)) for p in prebuilds for _ in range(CANCELS_EACH)]
    rng.shuffle(requests)

    def send(item):
        kind, arg = item
        if kind == "resize":
            return kind, arg, post(f"{base}/api/v1/warm-pools/{pool.id}/resize/", token, arg)
        return kind, arg, post(f"{base}/api/v1/prebuilds/{arg}/cancel/", token)

    with ThreadPoolExecutor(max_workers=25) as executor:
        results = list(executor.map(send, requests))

    assert [status for _, _, (status, _) in results] == [200] * len(requests), [r for r in results if r[2][0] != 200]

    # Resizes: every version names one state; the changed ones are exactly initial+1 .. final.
    states = defaultdict(set)
    for kind, asked, (_, body) in results:
        if kind == "resize":
            spec = body["spec"]
            version = int(spec["specVersion"])
            states[version].add((spec.get("minSize", 0), spec.get("maxSize", 0)))
            assert (spec.get("minSize", 0), spec.get("maxSize", 0)) == (asked["minSize"], asked["maxSize"])
    assert all(len(s) == 1 for s in states.values()), states  # no two states under one version
    final = WarmPool.objects.get(id=pool.id)
    initial = pool.spec_version
    assert sorted(states) == list(range(min(states), final.spec_version + 1))
    assert min(states) == initial + 1
    assert states[final.spec_version] == {(final.min_size, final.max_size)}  # the last accepted write won

    # Cancels: one accepted per prebuild (one version step), the rest idempotent; all CANCELLED.
    for prebuild in prebuilds:
        current = Prebuild.objects.get(id=prebuild.id)
        assert current.desired_phase == PrebuildPhase.CANCELLED
        assert current.phase == PrebuildPhase.CANCELLED
        assert current.spec_version == prebuild.spec_version + 1
    cancel_bodies = [body for kind, _, (_, body) in results if kind == "cancel"]
    assert all(body["spec"]["desiredPhase"] == "PREBUILD_PHASE_CANCELLED" for body in cancel_bodies)


def _answers(base: str) -> bool:
    try:
        urllib.request.urlopen(base + "/healthz", timeout=5).close()
        return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
