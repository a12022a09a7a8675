"""Keyset pagination with opaque tokens, shared by every list (pages, REST, Connect).

Lists are ordered newest first by (created_at, id); a token encodes the last row of the previous
page, so pages stay stable while new rows arrive and a deep page costs the same as the first.

A token is signed (django.core.signing, its own salt), so it cannot be forged or edited, and it
binds the list it came from: its `scope`, the method and the filter (list_scope). A token used
with another method or another filter is invalid_argument, never a page of something else.

Page sizes are checked where a request is parsed, by the rule of gitpod.v1.PaginationRequest
(core.validation: 0 to 100, 0 meaning the default); paginate takes a size already within it.
"""

import hashlib
import uuid
from dataclasses import dataclass

from django.core import signing
from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime
from gitpod.v1.pagination_pb2 import PaginationRequest

from core.errors import InvalidArgument
from core.validation import int_range

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = int_range(PaginationRequest, "page_size")[1]

TOKEN_SALT = "core.pagination.token"
TOKEN_FIELD = "pagination.token"


@dataclass
class Page:
    items: list
    next_token: str  # empty on the last page


def list_scope(method: str, filter_message=None) -> str:
    """The scope of a list of gitpod.v1 messages: the method and its filter message, as its
    deterministic wire form (the same filter in REST and Connect is the same scope)."""
    data = filter_message.SerializeToString(deterministic=True) if filter_message is not None else b""
    return f"{method}:{data.hex()}"


def _digest(scope: str) -> str:
    # Short: the token only needs to tell scopes apart, and it travels in URLs.
    return hashlib.sha256(scope.encode()).hexdigest()[:24]


def _encode(obj, scope: str) -> str:
    # `id`, not `pk`: lists may page over rows of values_list(named=True) as well as models.
    data = {"c": obj.created_at.isoformat(), "i": str(obj.id), "s": _digest(scope)}
    return signing.dumps(data, salt=TOKEN_SALT)


def _decode(token: str, scope: str):
    try:
        data = signing.loads(token, salt=TOKEN_SALT)
        created_at = parse_datetime(data["c"])
        pk = uuid.UUID(data["i"])
        if created_at is None:
            raise ValueError
        bound = data["s"]
    except (signing.BadSignature, ValueError, KeyError, TypeError, RecursionError, UnicodeDecodeError):
        raise InvalidArgument(f"{TOKEN_FIELD} is not a token from a previous page", field=TOKEN_FIELD) from None
    if bound != _digest(scope):
        raise InvalidArgument(
            f"{TOKEN_FIELD} belongs to another list or filter: send the filter of the first page", field=TOKEN_FIELD
        )
    return created_at, pk


def paginate(queryset: QuerySet, *, scope: str, page_size: int | None = None, token: str = "") -> Page:
    """One page of `queryset`, newest first. `scope` names the list and its filter; a token from a
    list of another scope is refused."""
    size = page_size or DEFAULT_PAGE_SIZE
    if not 0 < size <= MAX_PAGE_SIZE:
        raise ValueError(f"page size {size} is outside the PaginationRequest rule: validate the request first")
    queryset = queryset.order_by("-created_at", "-pk")
    if token:
        created_at, pk = _decode(token, scope)
        queryset = queryset.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=pk))
    rows = list(queryset[: size + 1])
    items = rows[:size]
    return Page(items=items, next_token=_encode(items[-1], scope) if len(rows) > size else "")
