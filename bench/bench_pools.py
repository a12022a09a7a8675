"""Warm pool benchmark (issue 4): time to a ready environment three ways, in one run, on the
`heavy` sample; and one reconcile pass over 500 idle pools.

    .venv/bin/python bench/bench_pools.py [--files 20000] [--claims 20] [--colds 3] [--pools 500]

Runs against a fresh SQLite database in a temporary data dir (DATABASE_URL is ignored), with the
same code a worker runs: real git, sandbox, snapshot store and restores. Reports p50/p95 of the
server-side time to ready (Environment.ready_after_ms) and the ratios the issue asks for.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT.parent / "shared" / "fixtures" / "make_sample_repo.py"


def setup_django(data_dir: Path) -> None:
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def pct(values, fraction):
    from warmpools.metrics import percentile

    return percentile(list(values), fraction)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--claims", type=int, default=20)
    parser.add_argument("--colds", type=int, default=3)
    parser.add_argument("--pools", type=int, default=500)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-pools-"))
    work.chmod(0o711)  # the sandbox user must traverse it to reach the workspaces
    setup_django(work / "data")
    from datetime import timedelta

    from django.contrib.auth import get_user_model

    from prebuilds import execution
    from prebuilds import services as prebuild_services
    from projects import services as project_services
    from warmpools import environments, reconciler
    from warmpools import services as pool_services
    from warmpools.models import EnvironmentSource

    repo = work / "heavy"
    subprocess.run(
        [sys.executable, str(SAMPLE), "heavy", str(repo), "--files", str(args.files)], check=True, capture_output=True
    )
    admin = get_user_model().objects.create_user("bench")
    org = project_services.organization_create(name="Bench", admin=admin)
    runner = project_services.runner_create(organization=org, name="local", queue="bench")
    cls = project_services.environment_class_create(runner=runner, display_name="small", memory_mb=8192)
    project = project_services.project_create(
        actor=admin,
        organization=org,
        name="heavy",
        repository_url=str(repo),
        default_environment_class_id=cls.id,
        prebuilds_enabled=True,
        prebuild_environment_class_ids=[cls.id],
        prebuild_timeout=timedelta(hours=1),
    )

    print(f"heavy sample: {args.files} files; running the prebuild ...", flush=True)
    started = time.monotonic()
    prebuild = prebuild_services.prebuild_create(actor=admin, project=project)
    execution.execute(str(prebuild.id))
    prebuild.refresh_from_db()
    assert prebuild.phase == 60, prebuild.failure_message
    print(
        f"  prebuild completed in {time.monotonic() - started:.1f}s, snapshot {prebuild.snapshot_size_bytes >> 20} MiB"
    )

    size = min(args.claims, 20)
    pool = pool_services.warm_pool_create(
        actor=admin, project=project, environment_class_id=cls.id, min_size=size, max_size=size
    )
    started = time.monotonic()
    pool = reconciler.reconcile(pool.id)
    print(f"  pool of {size} ready in {time.monotonic() - started:.1f}s ({pool.running_instances} running)")

    def claim():
        environment = pool_services.environment_create(actor=admin, project=project)
        if environment.source != EnvironmentSource.POOL:
            environment = environments.build(environment.id)
        return environment

    hits = [claim() for _ in range(size)]
    assert all(e.source == EnvironmentSource.POOL for e in hits)
    pool_services.warm_pool_update(actor=admin, pool=pool, min_size=0, max_size=0)
    reconciler.reconcile(pool.id)  # drained: the next claims restore from the snapshot
    restores = [claim() for _ in range(args.claims)]
    assert all(e.source == EnvironmentSource.SNAPSHOT for e in restores)
    # Cold: no pool, no snapshot to start from (as for a project's very first environment).
    from prebuilds.models import Prebuild

    Prebuild.objects.filter(id=prebuild.id).update(phase=70)
    colds = [claim() for _ in range(args.colds)]
    assert all(e.source == EnvironmentSource.COLD and e.phase == "ready" for e in colds), [
        e.failure_message for e in colds
    ]

    rows = []
    for name, envs in (("pool hit", hits), ("restore", restores), ("cold", colds)):
        ms = [e.ready_after_ms for e in envs]
        rows.append((name, len(ms), pct(ms, 0.5), pct(ms, 0.95)))
    print("\nTime to a ready environment (server side, ms)")
    print(f"{'source':<10} {'n':>3} {'p50':>12} {'p95':>12}")
    for name, n, p50, p95 in rows:
        print(f"{name:<10} {n:>3} {p50:>12.2f} {p95:>12.2f}")
    hit_p95, cold_p50 = rows[0][3], rows[2][2]
    print(f"pool-hit p95 = {hit_p95:.2f} ms (target <= 50 ms)")
    print(f"cold p50 / pool-hit p95 = {cold_p50 / hit_p95:.0f}x (target >= 400x)")

    # --- 500 idle pools ---------------------------------------------------------------------
    from warmpools.models import WarmPool

    for i in range(args.pools):
        p = project_services.project_create(
            actor=admin,
            organization=org,
            name=f"idle-{i}",
            repository_url=str(repo),
            default_environment_class_id=cls.id,
            prebuilds_enabled=True,
            prebuild_environment_class_ids=[cls.id],
        )
        pool_services.warm_pool_create(actor=admin, project=p, environment_class_id=cls.id, min_size=0, max_size=0)
    reconciler.reconcile_pass()  # the first pass settles the new pools
    total = WarmPool.objects.not_deleted().count()
    started = time.monotonic()
    acted = reconciler.reconcile_pass()
    elapsed = time.monotonic() - started
    # Baseline in the same run: the full per-pool reconcile over the same pools.
    started = time.monotonic()
    for pool_id in WarmPool.objects.not_deleted().values_list("id", flat=True):
        reconciler.reconcile(pool_id)
    full = time.monotonic() - started
    print(f"\nOne reconcile pass over {total} idle pools: {elapsed:.3f}s, {acted} needed work (target <= 1 s)")
    print(f"  (a full reconcile of each pool, for comparison: {full:.3f}s)")
    subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
