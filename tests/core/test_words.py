"""Times in a person's words (core.words), as every page writes them and ui.js keeps them."""

from datetime import UTC, datetime, timedelta

import pytest

from core import words

NOW = datetime(2026, 3, 1, 14, 5, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds_ago", "text"),
    [
        (0, "just now"),
        (9.9, "just now"),
        (10, "10 seconds ago"),
        (59, "59 seconds ago"),
        (60, "1 minute ago"),
        (119, "1 minute ago"),
        (3599, "59 minutes ago"),
        (3600, "1 hour ago"),
        (86399, "23 hours ago"),
        (86400, "1 day ago"),
        (200000, "2 days ago"),
        (-5, "in a moment"),
        (-120, "in 2 minutes"),
    ],
)
def test_relative(seconds_ago, text):
    assert words.relative(NOW - timedelta(seconds=seconds_ago), NOW) == text


def test_absolute_names_the_time_zone():
    assert words.absolute(NOW) == "2026-03-01 14:05:09 UTC"
    assert words.absolute(None) == "—"


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (7, "7s"), (125, "2m 05s"), (3725, "1h 02m"), (-3, "0s")])
def test_duration(seconds, text):
    assert words.duration(timedelta(seconds=seconds)) == text
