"""Small presentation helpers for the pages: durations, the pool gauge and the duration chart.

Charts are inline SVG drawn with presentation attributes (never style attributes or scripts), so
they keep working under a strict Content-Security-Policy and need no chart library.
"""

from datetime import timedelta

from django import template

from core.paths import redact_paths
from prebuilds.models import PrebuildPhase

register = template.Library()

# Outcome colour classes for prebuild phases.
_OUTCOME = {
    PrebuildPhase.COMPLETED: "ok",
    PrebuildPhase.FAILED: "bad",
    PrebuildPhase.CANCELLED: "off",
    PrebuildPhase.CANCELLING: "off",
    PrebuildPhase.DELETING: "off",
}


@register.filter
def duration(value: timedelta | None) -> str:
    """1:02:05 -> '1h 02m', 0:02:05 -> '2m 05s', 0:00:07 -> '7s'; None -> '—'."""
    if value is None:
        return "—"
    seconds = max(int(value.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


@register.filter
def outcome(phase: int) -> str:
    """A CSS modifier for a prebuild phase (its value): ok, bad, off (stopped by someone) or live."""
    return _OUTCOME.get(phase, "live")


@register.filter
def milliseconds(value: float | None) -> str:
    """A latency in ms as a person reads it: 0.4 -> '<1 ms', 7.3 -> '7 ms', 1234 -> '1.2 s',
    75000 -> '1m 15s'; None (nothing measured yet) -> '—'."""
    if value is None:
        return "—"
    if value < 1:
        return "<1 ms"
    if value < 999.5:  # rounds to at most 999 ms
        return f"{round(value)} ms"
    if value < 59_950:  # rounds to at most 59.9 s
        return f"{value / 1000:.1f} s"
    return duration(timedelta(milliseconds=value))


@register.inclusion_tag("components/pool_gauge.html")
def pool_gauge(pool):
    """Running, stopped and target instances against the pool's min..max, on a 0..scale axis."""
    running, stopped, target = pool.running_instances, pool.stopped_instances, pool.status_desired_size
    scale = max(pool.max_size, running + stopped, target, 1)
    width = 120

    def x(n):
        return round(n * width / scale, 1)

    return {
        "pool": pool,
        "width": width,
        "band_x": x(pool.min_size),
        "band_w": max(x(pool.max_size) - x(pool.min_size), 1.5),
        "running_w": x(running),
        "stopped_x": x(running),
        "stopped_w": x(stopped),
        "target_x": min(max(x(target), 1), width - 1) - 1,  # a 2-unit tick centred on the target
        "label": (f"{running} running, {stopped} stopped, target {target}; min {pool.min_size}, max {pool.max_size}"),
    }


@register.inclusion_tag("components/duration_chart.html")
def duration_chart(prebuilds):
    """One bar per run (oldest left), height = duration, colour = outcome."""
    prebuilds = list(prebuilds)
    durations = [p.duration.total_seconds() if p.duration else 0 for p in prebuilds]
    longest = max(durations, default=0) or 1
    # At least 12 slots, so that a project with a few runs does not get wall-wide bars.
    slot = 600 / max(len(prebuilds), 12)
    bars = []
    for i, (prebuild, seconds) in enumerate(zip(prebuilds, durations, strict=True)):
        height = max(round(seconds / longest * 140, 1), 2)
        bars.append(
            {
                "prebuild": prebuild,
                "x": round(i * slot + slot * 0.15, 1),
                "y": round(150 - height, 1),
                "w": round(slot * 0.7, 1),
                "h": height,
                "outcome": outcome(prebuild.phase),
            }
        )
    return {"bars": bars, "longest": timedelta(seconds=longest) if durations else None}


@register.filter
def runner_place(path: str) -> str:
    """A path on the runner as its place (`<warm pools>/<pool>/instance-<id>`), not the host path."""
    return redact_paths(path)
