"""A least-recently-used map bounded in bytes, for every cache on the request path.

A count bound says nothing about memory when entries differ by orders of magnitude (a 12-arm candidate
list and a 4,096-arm one), so each entry is charged ``size_of(key, value)`` bytes, an estimate the
caller calibrates (tests measure it against ``tracemalloc``), and the oldest entries go first once the
total would exceed ``max_bytes``. An entry larger than the whole budget is not kept at all.
"""
from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from offerbandit.checks import check_scalar

__all__ = ["ByteLRU", "IdentityLRU", "text_bytes"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def text_bytes(*texts: str) -> int:
    """What the given strings occupy (CPython's compact ASCII: ~49 bytes + one per character)."""
    return sum(sys.getsizeof(text) for text in texts)


class ByteLRU(Generic[K, V]):
    """``get``/``put``/``pop`` under one lock; ``nbytes`` is the charged total, never above ``max_bytes``."""

    def __init__(self, max_bytes: int, size_of: Callable[[K, V], int],
                 on_evict: Callable[[K, V], None] | None = None) -> None:
        self.max_bytes = check_scalar(max_bytes, "max_bytes", int, low=0)
        self._size_of = size_of
        self._on_evict = on_evict
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.nbytes = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: K) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: K, value: V) -> bool:
        """Keep ``value`` under ``key`` (replacing any); False if it alone exceeds the budget."""
        size = int(self._size_of(key, value))
        evicted: list[tuple[K, V]] = []
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.nbytes -= old[1]
            if size > self.max_bytes:
                return False
            self._items[key] = (value, size)
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                k, (v, s) = self._items.popitem(last=False)
                self.nbytes -= s
                self.evictions += 1
                evicted.append((k, v))
        if self._on_evict is not None:
            for k, v in evicted:
                self._on_evict(k, v)
        return True

    def pop(self, key: K) -> V | None:
        with self._lock:
            found = self._items.pop(key, None)
            if found is None:
                return None
            self.nbytes -= found[1]
            return found[0]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.nbytes = 0


O = TypeVar("O")


class IdentityLRU(Generic[O, V]):
    """Values derived from immutable objects (arm sets), cached by the object's identity within ``max_bytes``.

    ``build(obj)`` makes the value, ``size_of(value)`` charges it. Identity, not equality: hashing a
    128-arm set costs more than the lookup saves, and callers share their objects (the candidate cache).
    The cache holds a reference to every object it keys, so an ``id`` is never reused while cached.
    """

    def __init__(self, max_bytes: int, build: Callable[[O], V], size_of: Callable[[V], int]) -> None:
        self._lru: ByteLRU[int, tuple[O, V]] = ByteLRU(max_bytes, lambda key, entry: int(size_of(entry[1])))
        self._build = build

    def get(self, obj: O) -> V:
        found = self._lru.get(id(obj))
        if found is not None and found[0] is obj:
            return found[1]
        value = self._build(obj)
        self._lru.put(id(obj), (obj, value))
        return value

    @property
    def nbytes(self) -> int:
        return self._lru.nbytes

    def __len__(self) -> int:
        return len(self._lru)
