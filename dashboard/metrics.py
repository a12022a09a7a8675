"""/metrics in the Prometheus text format, read from the database (and the broker) at scrape time.

No in-process counters: the web server runs several gunicorn workers on several hosts, and each
would count only what it saw. Every figure here is the same whichever process answers.

Choices worth knowing when writing queries:
- `prebuild_duration_seconds` covers prebuilds that finished (COMPLETED or FAILED) in the last
  24 hours: a window, not a running total (a prebuild's row changes when it is later deleted), so
  use `histogram_quantile()` on the buckets directly, not on `rate()` of them.
- `environment_ready_seconds` (claim latency) covers every environment ever created: it only grows.
- `prebuild_runner_lost_total` counts prebuilds the reaper failed as "runner lost" (read from
  their failure message); re-sends of lost messages are not stored, so the reaper's pending work is
  shown instead: `prebuild_reaper_overdue_pending` (what its next pass re-sends) and
  `prebuild_reaper_stalled_deleting`.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from prebuilds.models import Prebuild, PrebuildPhase
from projects.models import Runner
from warmpools.models import Environment, EnvironmentSource, WarmPool, WarmPoolPhase

DURATION_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
READY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
DURATION_WINDOW = timedelta(hours=24)
# kombu's Redis transport keeps messages of priority > 0 in extra lists named queue + sep + step.
REDIS_PRIORITY_SEP = "\x06\x16"
REDIS_PRIORITY_STEPS = (3, 6, 9)


def _histogram(values: list[float], buckets: tuple) -> tuple[list[tuple[str, int]], float]:
    counts = [(str(float(b)), sum(1 for v in values if v <= b)) for b in buckets]
    return [*counts, ("+Inf", len(values))], float(sum(values))


class DatabaseCollector:
    def collect(self):
        yield from self._prebuilds()
        yield from self._pools()
        yield from self._environments()
        yield from self._queues()

    def _prebuilds(self):
        by_phase = GaugeMetricFamily("prebuilds", "Prebuilds by phase.", labels=["phase"])
        counts = dict(Prebuild.objects.values_list("phase").annotate(n=Count("id")).order_by())
        for phase in PrebuildPhase:
            if phase != PrebuildPhase.UNSPECIFIED:
                by_phase.add_metric([phase.name], counts.get(phase, 0))
        yield by_phase

        since = timezone.now() - DURATION_WINDOW
        rows = Prebuild.objects.filter(
            phase__in=[PrebuildPhase.COMPLETED, PrebuildPhase.FAILED],
            completion_time__gte=since,
            started_at__isnull=False,
        ).values_list("project__name", "environment_class__display_name", "phase", "started_at", "completion_time")
        durations: dict[tuple, list[float]] = defaultdict(list)
        for project, environment_class, phase, started, finished in rows:
            outcome = PrebuildPhase(phase).name.lower()
            durations[(project, environment_class, outcome)].append(max(0.0, (finished - started).total_seconds()))
        histogram = HistogramMetricFamily(
            "prebuild_duration_seconds",
            "Run time (start to finish) of prebuilds that finished in the last 24 h.",
            labels=["project", "environment_class", "outcome"],
        )
        for labels, values in sorted(durations.items()):
            buckets, total = _histogram(values, DURATION_BUCKETS)
            histogram.add_metric(list(labels), buckets, total)
        yield histogram

        lost = Prebuild.objects.filter(failure_message__startswith="runner lost").count()
        yield CounterMetricFamily(
            "prebuild_runner_lost", "Prebuilds failed by the reaper because their worker stopped reporting.", lost
        )
        now = timezone.now()
        overdue = Prebuild.objects.filter(
            phase=PrebuildPhase.PENDING, created_at__lt=now - settings.PREBUILD_REQUEUE_AFTER
        ).count()
        yield GaugeMetricFamily(
            "prebuild_reaper_overdue_pending",
            "PENDING prebuilds older than PREBUILD_REQUEUE_AFTER_SECONDS: the reaper re-sends them.",
            overdue,
        )
        stalled = Prebuild.objects.filter(
            phase=PrebuildPhase.DELETING, updated_at__lt=now - timedelta(minutes=5)
        ).count()
        yield GaugeMetricFamily(
            "prebuild_reaper_stalled_deleting", "Deletions stalled for 5 minutes: the reaper re-sends them.", stalled
        )

    def _pools(self):
        by_phase = GaugeMetricFamily("warm_pools", "Warm pools by phase.", labels=["phase"])
        counts = dict(WarmPool.objects.values_list("phase").annotate(n=Count("id")).order_by())
        for phase in WarmPoolPhase:
            if phase != WarmPoolPhase.UNSPECIFIED:
                by_phase.add_metric([phase.name], counts.get(phase, 0))
        yield by_phase

        labels = ["pool", "project", "environment_class"]
        running = GaugeMetricFamily("warm_pool_running_instances", "Running (ready) instances.", labels=labels)
        stopped = GaugeMetricFamily("warm_pool_stopped_instances", "Stopped (staged) instances.", labels=labels)
        target = GaugeMetricFamily("warm_pool_target_instances", "Running instances wanted now.", labels=labels)
        hits = CounterMetricFamily("warm_pool_hits", "Environments handed out from the pool.", labels=labels)
        misses = CounterMetricFamily("warm_pool_misses", "Environments the pool could not serve.", labels=labels)
        pools = WarmPool.objects.not_deleted().values_list(
            "id",
            "project__name",
            "environment_class__display_name",
            "running_instances",
            "stopped_instances",
            "status_desired_size",
            "hits",
            "misses",
        )
        for pool_id, project, environment_class, n_running, n_stopped, n_target, n_hits, n_misses in pools:
            values = [str(pool_id), project, environment_class]
            running.add_metric(values, n_running)
            stopped.add_metric(values, n_stopped)
            target.add_metric(values, n_target)
            hits.add_metric(values, n_hits)
            misses.add_metric(values, n_misses)
        yield from (running, stopped, target, hits, misses)

    def _environments(self):
        # Bucket counts in SQL: the table only grows, so it is never read row by row.
        aggregates = {
            f"le{i}": Count("id", filter=Q(ready_after_ms__lte=bound * 1000)) for i, bound in enumerate(READY_BUCKETS)
        }
        rows = (
            Environment.objects.filter(ready_after_ms__isnull=False)
            .values("source")
            .annotate(n=Count("id"), total_ms=Sum("ready_after_ms"), **aggregates)
            .order_by()
        )
        histogram = HistogramMetricFamily(
            "environment_ready_seconds",
            "Time from the request to a ready environment (claim latency), by where it came from.",
            labels=["source"],
        )
        by_source = {row["source"]: row for row in rows}
        for source in EnvironmentSource:
            row = by_source.get(source.value)
            if row is None:
                continue
            buckets = [(str(float(bound)), row[f"le{i}"]) for i, bound in enumerate(READY_BUCKETS)]
            histogram.add_metric([source.value], [*buckets, ("+Inf", row["n"])], (row["total_ms"] or 0) / 1000)
        yield histogram

    def _queues(self):
        queues = ["control", *Runner.objects.order_by("queue").values_list("queue", flat=True)]
        length = GaugeMetricFamily("celery_queue_length", "Messages waiting in each queue.", labels=["queue"])
        try:
            counts = queue_lengths(queues)
            up = 1
        except Exception:  # a scrape reports the broker as down instead of failing as a whole
            counts, up = {}, 0
        for queue, n in counts.items():
            length.add_metric([queue], n)
        yield length
        yield GaugeMetricFamily("celery_broker_up", "Whether the broker answered this scrape.", up)


def queue_lengths(queues: list[str]) -> dict[str, int]:
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            with client.pipeline(transaction=False) as pipe:
                for queue in queues:
                    pipe.llen(queue)
                    for step in REDIS_PRIORITY_STEPS:
                        pipe.llen(f"{queue}{REDIS_PRIORITY_SEP}{step}")
                replies = pipe.execute()
        finally:
            client.close()
        per_queue = 1 + len(REDIS_PRIORITY_STEPS)
        return {q: sum(replies[i * per_queue : (i + 1) * per_queue]) for i, q in enumerate(queues)}
    # kombu's filesystem transport: one file per message, named <time>_<uuid>.<queue>.msg.
    folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
    counts = dict.fromkeys(queues, 0)
    for entry in folder.iterdir():
        queue = entry.name.removesuffix(".msg").split(".", 1)[-1]
        if queue in counts:
            counts[queue] += 1
    return counts


_registry = CollectorRegistry(auto_describe=False)
_registry.register(DatabaseCollector())


def allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    if "X-Forwarded-For" in request.headers:
        return False  # came through a proxy: REMOTE_ADDR is the proxy's, not the client's
    try:
        client = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(client in network for network in settings.METRICS_ALLOWED_NETWORKS)


@never_cache
@require_GET
def metrics(request):
    if not allowed(request):
        return HttpResponse("metrics are not available to this client\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(_registry), content_type=CONTENT_TYPE_LATEST)
