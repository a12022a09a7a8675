"""Keyset pagination with opaque tokens, shared by every list (pages, REST, Connect).

Lists are ordered newest first by (created_at, id); a token encodes the last row of the previous
page, so pages stay stable while new rows arrive and a deep page costs the same as the first.
"""

import base64
import json
import uuid
from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

from core.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100


@dataclass
class Page:
    items: list
    next_token: str  # empty on the last page


def page_size_or_default(page_size: int | None) -> int:
    """0 or absent means the default; above the maximum is capped (as Ona's API does)."""
    if page_size is None or page_size == 0:
        return DEFAULT_PAGE_SIZE
    if page_size < 0:
        raise InvalidArgument("pagination.page_size must not be negative", field="pagination.page_size")
    return min(page_size, MAX_PAGE_SIZE)


def _encode(obj) -> str:
    # `id`, not `pk`: lists may page over rows of values_list(named=True) as well as models.
    raw = json.dumps({"c": obj.created_at.isoformat(), "i": str(obj.id)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str):
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        created_at = parse_datetime(data["c"])
        pk = uuid.UUID(data["i"])
        if created_at is None:
            raise ValueError
        return created_at, pk
    except (ValueError, KeyError, TypeError, RecursionError, UnicodeDecodeError):
        raise InvalidArgument(
            "pagination.token is not a token from a previous page", field="pagination.token"
        ) from None


def paginate(queryset: QuerySet, *, page_size: int | None = None, token: str = "") -> Page:
    size = page_size_or_default(page_size)
    queryset = queryset.order_by("-created_at", "-pk")
    if token:
        created_at, pk = _decode(token)
        queryset = queryset.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=pk))
    rows = list(queryset[: size + 1])
    items = rows[:size]
    return Page(items=items, next_token=_encode(items[-1]) if len(rows) > size else "")
