"""Which call decides an ``event_id``: the idempotency cache, the calls in flight, and their settlement.

A call *claims* each event id it is about to decide. An id already decided is answered from the
byte-bounded :class:`~service.outcomes.RepeatCache`; one being decided by a concurrent call is waited
for (after the fingerprint check, so a different request under the same id is refused at once, before
anything is decided); otherwise the call claims it and, once its write resolved, settles the claim with
the decision's compact record (committed) or the failure (nothing committed: the id is free again).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from service.outcomes import RepeatCache, RepeatRecord

__all__ = ["EventClaims"]

#: ``check(index, stored_fingerprint)`` raises to refuse a repeat whose request differs.
Check = Callable[[int, "str | None"], None]


class EventClaims:
    """Thread-safe; ``recent`` is the idempotency cache (bounded by ``max_bytes``)."""

    def __init__(self, max_bytes: int) -> None:
        self.recent = RepeatCache(max_bytes)
        self._inflight: dict[str, tuple[str, Future]] = {}  # event id -> (fingerprint, future of its record)
        self._lock = threading.Lock()

    def claim(self, keys: Sequence[tuple[str, str]], check: Check
              ) -> tuple[dict[int, RepeatRecord], dict[int, Future], dict[str, Future]]:
        """For each ``(event_id, fingerprint)``: its known record, the future of a concurrent call deciding
        it, or a new claim (by event id). If ``check`` refuses one, the claims made so far are released."""
        known: dict[int, RepeatRecord] = {}
        waiting: dict[int, Future] = {}
        claimed: dict[str, Future] = {}
        with self._lock:
            try:
                for i, (event_id, fingerprint) in enumerate(keys):
                    record = self.recent.get(event_id)
                    if record is not None:
                        check(i, record.fingerprint)
                        known[i] = record
                    elif event_id in self._inflight:
                        stored, future = self._inflight[event_id]
                        check(i, stored)
                        waiting[i] = future
                    else:
                        claimed[event_id] = future = Future()
                        self._inflight[event_id] = (fingerprint, future)
            except BaseException as exc:
                self._fail_locked(claimed, exc)
                raise
        return known, waiting, claimed

    def settle(self, future: Future | None, event_id: str, record: RepeatRecord) -> None:
        """The event is decided (committed, or found in the log): remember it, wake who waits for it."""
        with self._lock:
            self.recent.put(record)
            self._inflight.pop(event_id, None)
        if future is not None and not future.done():
            future.set_result(record)

    def fail(self, claimed: dict[str, Future], exc: BaseException) -> None:
        """Nothing of these claims was committed: free the ids; who waits for them gets ``exc``."""
        with self._lock:
            self._fail_locked(claimed, exc)

    def _fail_locked(self, claimed: dict[str, Future], exc: BaseException) -> None:
        for event_id, future in claimed.items():
            entry = self._inflight.get(event_id)
            if entry is not None and entry[1] is future:
                del self._inflight[event_id]
            if not future.done():
                future.set_exception(exc)

    def forget(self, event_ids: Sequence[str]) -> None:
        """Drop event ids from the idempotency cache (e.g. after an erase)."""
        with self._lock:
            for event_id in event_ids:
                self.recent.pop(event_id)

    def forget_all(self) -> None:
        """Empty the idempotency cache (an erasure: repeats are then checked against the log, which no longer
        holds the erased customer's decisions; calls in flight are not affected)."""
        with self._lock:
            self.recent.clear()
