"""Wire helpers shared by the gitpod.v1 conversions of every room: timestamps and durations."""

from __future__ import annotations

from datetime import datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from core.errors import InvalidArgument

# The range of a protobuf int32: what a request's integer field can hold at all (its rule, if any, is
# the descriptor's).
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def duration(value: timedelta) -> Duration:
    d = Duration()
    d.FromTimedelta(value)
    return d


def parse_duration(text: str, *, field: str) -> timedelta:
    """A protobuf JSON duration ("3600s", "1.5s") as a timedelta; InvalidArgument naming `field`."""
    d = Duration()
    try:
        d.FromJsonString(text)
        return d.ToTimedelta()
    except (ValueError, OverflowError, TypeError):
        raise InvalidArgument(f'{field} must be a duration in seconds such as "3600s"', field=field) from None
