"""Time-ordered ids for ``event_id`` and ``reward_id``, made by the client (UUIDv7 layout, RFC 9562).

48 bits of Unix milliseconds, 12 bits of sub-millisecond clock, 62 random bits. Within one process ids
are strictly increasing (a clock that stands still or steps back continues from the last id), so the
ids a client sends sort in the order it made them; across processes they sort by time to the
millisecond and never collide in practice (62 random bits per id).
"""
from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ["new_id"]

_lock = threading.Lock()
_last = 0


def _timestamp() -> int:
    """60 bits: Unix milliseconds (48) then the fraction of the millisecond in 1/4096ths (12)."""
    ns = time.time_ns()
    ms, rest = divmod(ns, 1_000_000)
    return (ms << 12) | (rest * 4096 // 1_000_000)


def new_id() -> str:
    """A fresh time-ordered id: 36 characters, ``xxxxxxxx-xxxx-7xxx-yxxx-xxxxxxxxxxxx``."""
    global _last
    random_bits = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    with _lock:
        stamp = max(_timestamp(), _last + 1)
        _last = stamp
    ms, sub = stamp >> 12, stamp & 0xFFF
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | sub << 64 | 0b10 << 62 | random_bits
    return str(uuid.UUID(int=value))
