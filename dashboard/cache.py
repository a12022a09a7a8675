"""The shared (Redis) cache stores JSON, never pickle.

Django's RedisCache pickles every value that is not an integer, and unpickles whatever it reads
back: anybody who can write to that Redis (a leaked password, a service that can reach it) could
make the next web request that reads the key run code. Here a value is JSON (integers stay plain,
as Django keeps them, so that cache.incr() is Redis INCR), and a value that is not JSON reads as a
miss with a warning, so a planted or corrupted entry costs one recomputation, not an error page.
What needs more than JSON types (the API token cache) converts to plain data itself and signs it.

The per-process local-memory cache (development, tests) pickles too, but nothing outside the
process can write to it; were it ever replaced by a shared one, it must use this backend.
"""

from __future__ import annotations

import json
import logging

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

log = logging.getLogger(__name__)


class UndecodableValue(ValueError):
    pass


class JSONSerializer:
    def dumps(self, obj):
        if type(obj) is int:
            return obj
        return json.dumps(obj, separators=(",", ":")).encode()

    def loads(self, data):
        try:
            return int(data)
        except ValueError:
            pass
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise UndecodableValue("not JSON") from None


class _Client(RedisCacheClient):
    def __init__(self, servers, serializer=None, **options):
        super().__init__(servers, serializer=serializer or JSONSerializer, **options)

    def get(self, key, default):
        try:
            return super().get(key, default)
        except UndecodableValue:
            log.warning("cache: ignored a value that is not JSON under %r", key)
            return default

    def get_many(self, keys):
        try:
            return super().get_many(keys)
        except UndecodableValue:
            # Rare (only after tampering): fall back to one key at a time, skipping the bad ones.
            found = {}
            for key in keys:
                value = self.get(key, _MISSING)
                if value is not _MISSING:
                    found[key] = value
            return found


_MISSING = object()


class JSONRedisCache(RedisCache):
    """django.core.cache.backends.redis.RedisCache with JSON values (see the module docstring)."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _Client
