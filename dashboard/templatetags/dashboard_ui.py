"""Small presentation helpers for the pages: times (relative with the absolute one beside it),
durations that tick while something runs, the pool gauge and the duration chart.

Charts are inline SVG drawn with presentation attributes (never style attributes or scripts), so
they keep working under a strict Content-Security-Policy and need no chart library.

What ticks in the browser (static/js/ui.js) starts from what is rendered here, in the same words
(core.words).
"""

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.html import format_html

from core import words
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
    return words.duration(value)


@register.filter
def absolute(moment: datetime | None) -> str:
    """A moment with its time zone, as a person reads it: '2026-03-01 14:05:09 UTC'."""
    return words.absolute(moment)


@register.filter
def when(moment: datetime | None):
    """A moment as a relative time ('3 minutes ago') with the absolute one beside it: on hover
    (title) and for screen readers (read after it). ui.js keeps the relative words current."""
    if moment is None:
        return "—"
    exact = absolute(moment)
    return format_html(
        '<time datetime="{}" title="{}" data-relative><span class="rel">{}</span>'
        '<span class="visually-hidden"> ({})</span></time>',
        moment.isoformat(),
        exact,
        words.relative(moment, timezone.now()),
        exact,
    )


@register.simple_tag
def run_time(prebuild, estimate: timedelta | None = None):
    """How long a prebuild ran, or, while it runs, how long it has been running: a count that ticks
    (ui.js) from its start, with the previous completed run's duration as the estimate."""
    if prebuild.started_at is None:
        return "—"
    if prebuild.is_terminal or prebuild.phase == PrebuildPhase.DELETING:
        return duration(prebuild.duration)
    elapsed = timezone.now() - prebuild.started_at
    if estimate is None:
        return format_html(
            '<span class="ticking" data-since="{}">{}</span>', prebuild.started_at.isoformat(), duration(elapsed)
        )
    return format_html(
        '<span class="ticking" data-since="{}" data-estimate="{}">{}</span>',
        prebuild.started_at.isoformat(),
        int(estimate.total_seconds()),
        estimate_text(elapsed, estimate),
    )


def estimate_text(elapsed: timedelta, estimate: timedelta) -> str:
    """'1m 05s of about 2m 10s' while within the previous run's time, '2m 30s, longer than the
    previous run (2m 10s)' beyond it (ui.js writes the same)."""
    if elapsed <= estimate:
        return f"{duration(elapsed)} of about {duration(estimate)}"
    return f"{duration(elapsed)}, longer than the previous run ({duration(estimate)})"


@register.filter
def countdown(moment: datetime | None):
    """'in 12s', counting down in the browser (ui.js) to `moment`, then 'now'."""
    if moment is None:
        return ""
    left = (moment - timezone.now()).total_seconds()
    return format_html(
        '<time class="countdown" datetime="{}" data-until="{}" title="{}">{}</time>',
        moment.isoformat(),
        moment.isoformat(),
        absolute(moment),
        f"in {duration(timedelta(seconds=left))}" if left > 0 else "now",
    )


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
    """One bar per run (oldest left), height = duration, colour = outcome, on a time axis from 0 to
    a round length at least the longest run. Each bar is a link of its own (an aria-hidden SVG bar
    inside a link named in words), so the chart reads as a list of runs and every run is reachable
    by keyboard; no link sits inside an SVG."""
    prebuilds = list(prebuilds)
    now = timezone.now()
    seconds = [_chart_seconds(p, now) for p in prebuilds]
    top = _axis_top(max(seconds, default=0))
    bars = []
    for prebuild, value in zip(prebuilds, seconds, strict=True):
        height = max(round(value / top * 100, 1), 1.5)
        bars.append(
            {
                "prebuild": prebuild,
                "y": round(100 - height, 1),
                "h": height,
                "outcome": outcome(prebuild.phase),
                "length": timedelta(seconds=value),
                "running": not prebuild.is_terminal and prebuild.started_at is not None,
            }
        )
    return {
        "bars": bars,
        "ticks": [duration(timedelta(seconds=top * share)) for share in (1, 0.5, 0)],
        "longest": timedelta(seconds=max(seconds, default=0)),
        "first": prebuilds[0].created_at if prebuilds else None,
        "last": prebuilds[-1].created_at if prebuilds else None,
    }


def _chart_seconds(prebuild, now) -> float:
    if prebuild.started_at is None:
        return 0
    if prebuild.is_terminal and prebuild.duration is not None:
        return max(prebuild.duration.total_seconds(), 0)
    return max((now - prebuild.started_at).total_seconds(), 0)  # still running: so far


# Axis tops a person reads at a glance: the smallest of these at least the longest run.
_AXIS_STEPS = (10, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200)


def _axis_top(longest: float) -> float:
    for step in _AXIS_STEPS:
        if longest <= step:
            return step
    return (int(longest // 3600) + 1) * 3600


@register.filter
def runner_place(path: str) -> str:
    """A path on the runner as its place (`<warm pools>/<pool>/instance-<id>`), not the host path."""
    return redact_paths(path)
