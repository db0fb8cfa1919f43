"""Which older keyed hashes belong to a customer the current key hashes to (user-hash key rotation).

The clear id is seen only when a request arrives; the per-user store is keyed by the current hash and
loads a customer from the log by it. With previous keys listed, the engine remembers, per current hash,
the same customer's hashes under the older keys (bounded, least recently used dropped), so the load reads
rows of every key: caps and history hold across the key change.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["KeyAliases"]


class KeyAliases:
    """Current keyed hash -> the same customer's hashes under previous keys. Thread-safe, bounded."""

    def __init__(self, max_entries: int) -> None:
        self._max = max(1, int(max_entries))
        self._aliases: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, current: str, previous: tuple[str, ...]) -> None:
        if not previous:
            return
        with self._lock:
            self._aliases[current] = previous
            self._aliases.move_to_end(current)
            while len(self._aliases) > self._max:
                self._aliases.popitem(last=False)

    def of(self, current: str) -> tuple[str, ...]:
        with self._lock:
            return self._aliases.get(current, ())
