"""Shared short-lived state: login transactions, challenges, replay caches, counters.

One small interface with two backends: memory (the embedded default, one
process) and Redis (production: every worker and host sees the same state).
Every operation that guards an invariant is atomic on both backends: ``pop``
hands a single-use value to exactly one caller, ``add`` succeeds once, and
``incr`` counts every call.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Protocol

import redis
from flask import Flask


class StoreUnavailable(Exception):
    """The shared store cannot be reached; :mod:`idp.core.errors` answers 503."""


def _unavailable_on_connection_error(method):
    """Redis connection and timeout errors become :class:`StoreUnavailable` (one type to catch)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    return wrapper


class KeyValueStore(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl: int) -> None: ...
    def add(self, key: str, value: bytes, ttl: int) -> bool: ...
    def pop(self, key: str) -> bytes | None: ...
    def delete(self, key: str) -> None: ...
    def incr(self, key: str, ttl: int, amount: int = 1) -> int: ...
    def ttl(self, key: str) -> int: ...
    def durable(self) -> bool: ...


class MemoryStore:
    """Process-local store for development and tests. Not for several workers."""

    def __init__(self, clock=time.monotonic) -> None:
        self._data: dict[str, tuple[bytes | int, float]] = {}
        self._lock = threading.Lock()

        self._clock = clock

    def durable(self) -> bool:
        return False  # one process's memory: development only

    def _live(self, key: str):
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= self._clock():
            del self._data[key]
            return None
        return item

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._live(key)
            if item is None:
                return None
            value = item[0]
            return str(value).encode() if isinstance(value, int) else value

    def set(self, key: str, value: bytes, ttl: int) -> None:
        with self._lock:
            self._data[key] = (value, self._clock() + ttl)
            if len(self._data) > 10000:
                now = self._clock()
                for k in [k for k, v in self._data.items() if v[1] <= now]:
                    del self._data[k]

    def add(self, key: str, value: bytes, ttl: int) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._data[key] = (value, self._clock() + ttl)
            return True

    def pop(self, key: str) -> bytes | None:
        with self._lock:
            item = self._live(key)
            if item is None:
                return None
            del self._data[key]
            return item[0] if isinstance(item[0], bytes) else str(item[0]).encode()

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def incr(self, key: str, ttl: int, amount: int = 1) -> int:
        with self._lock:
            item = self._live(key)
            if item is None:
                value, expires = 0, self._clock() + ttl
            else:
                value, expires = int(item[0]), item[1]
            value += amount
            self._data[key] = (value, expires)
            return value

    def ttl(self, key: str) -> int:
        with self._lock:
            item = self._live(key)
            return -2 if item is None else max(0, int(item[1] - self._clock()))


class RedisStore:
    """Redis-backed store shared by every worker and host."""

    _INCR = (
        "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) "
        "if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end "
        "return v"
    )

    def __init__(self, url: str, prefix: str = "idp:") -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix
        self._incr = self._redis.register_script(self._INCR)

    def _k(self, key: str) -> str:
        return self._prefix + key

    @_unavailable_on_connection_error
    def durable(self) -> bool:
        """Does Redis keep writes across a restart (append-only file on)?"""
        return int(self._redis.info("persistence").get("aof_enabled", 0)) == 1

    @_unavailable_on_connection_error
    def get(self, key: str) -> bytes | None:
        return self._redis.get(self._k(key))

    @_unavailable_on_connection_error
    def set(self, key: str, value: bytes, ttl: int) -> None:
        self._redis.set(self._k(key), value, ex=ttl)

    @_unavailable_on_connection_error
    def add(self, key: str, value: bytes, ttl: int) -> bool:
        return bool(self._redis.set(self._k(key), value, ex=ttl, nx=True))

    @_unavailable_on_connection_error
    def pop(self, key: str) -> bytes | None:
        return self._redis.getdel(self._k(key))

    @_unavailable_on_connection_error
    def delete(self, key: str) -> None:
        self._redis.delete(self._k(key))

    @_unavailable_on_connection_error
    def incr(self, key: str, ttl: int, amount: int = 1) -> int:
        return int(self._incr(keys=[self._k(key)], args=[amount, ttl]))

    @_unavailable_on_connection_error
    def ttl(self, key: str) -> int:
        return int(self._redis.ttl(self._k(key)))


def open_store(url: str, prefix: str = "idp:") -> KeyValueStore:
    if url.startswith("memory://"):
        return MemoryStore()
    return RedisStore(url, prefix=prefix)


def init_app(app: Flask) -> None:
    settings = app.extensions["idp.settings"]
    app.extensions["idp.kv"] = open_store(settings.kv_url, prefix=settings.kv_prefix)
