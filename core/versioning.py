"""Compare-and-swap writes on a version counter (spec_version / status_version).

Every write reads the current row, decides what to change, and applies the change only if the
version it read is still the current one, bumping it. A writer that lost the race re-reads and
decides again, so two concurrent writers cannot lose an update on any database.
"""

from collections.abc import Callable
from typing import TypeVar

from django.db import models
from django.utils import timezone

from core.errors import Conflict

M = TypeVar("M", bound=models.Model)

MAX_ATTEMPTS = 50


def cas_update(obj: M, *, version_field: str, mutate: Callable[[M], dict | None]) -> tuple[M, bool]:
    """Apply `mutate(current) -> changes` atomically against `version_field`.

    `mutate` may raise a domain error (the write is refused) or return None/{} (nothing to do).
    Returns the up-to-date object and whether a write happened.
    """
    model = type(obj)
    for _ in range(MAX_ATTEMPTS):
        changes = mutate(obj)
        if not changes:
            return obj, False
        version = getattr(obj, version_field)
        changes = {**changes, version_field: version + 1, "updated_at": timezone.now()}
        written = model._default_manager.filter(pk=obj.pk, **{version_field: version}).update(**changes)
        if written == 1:
            for name, value in changes.items():
                setattr(obj, name, value)
            return obj, True
        obj = model._default_manager.get(pk=obj.pk)
    raise Conflict(f"{model._meta.verbose_name} {obj.pk} is being changed by others; try again")
