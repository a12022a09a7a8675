"""Reads shared by every room."""

import uuid

from django.db.models import QuerySet

from core.errors import InvalidArgument, NotFound


def get_by_id(queryset: QuerySet, object_id, *, label: str, field: str):
    """The object with that id in `queryset`, else NotFound naming it (a malformed id is simply not
    found: the caller learns nothing about what exists)."""
    try:
        key = object_id if isinstance(object_id, uuid.UUID) else uuid.UUID(str(object_id))
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"{label} {object_id} not found", field=field) from None
    try:
        # get() drops the model's ordering, which a lookup by key does not need.
        return queryset.get(pk=key)
    except queryset.model.DoesNotExist:
        raise NotFound(f"{label} {object_id} not found", field=field) from None


def uuids(values, name):
    """List filter values as UUIDs; a malformed one is an invalid filter (named by `name`)."""
    try:
        return [value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)) for value in values]
    except ValueError:
        raise InvalidArgument(f"filter.{name} must hold UUIDs", field=f"filter.{name}") from None
