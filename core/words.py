"""Times and lengths of time in a person's words, the same on every page (and in static/js/ui.js,
which keeps the ticking ones current): `duration` '2m 05s', `absolute` '2026-03-01 14:05:09 UTC',
`relative` '3 minutes ago'."""

from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.dateformat import format as date_format


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


def absolute(moment: datetime | None) -> str:
    """A moment with its time zone: '2026-03-01 14:05:09 UTC'."""
    if moment is None:
        return "—"
    return date_format(timezone.localtime(moment), "Y-m-d H:i:s T")


def relative(moment: datetime, now: datetime) -> str:
    """'just now', '42 seconds ago', '1 minute ago', '3 hours ago', '2 days ago'; 'in 5 minutes'."""
    seconds = (now - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 10:
        return "in a moment" if future else "just now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size:
            n = int(seconds // size)
            text = f"{n} {unit}{'' if n == 1 else 's'}"
            return f"in {text}" if future else f"{text} ago"
    raise AssertionError("unreachable")
