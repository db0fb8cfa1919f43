"""How long the garbage collector stopped this process: every collection timed, counted in the metrics, and
the long ones logged.

A collection holds the GIL from start to end, so while it runs no thread answers, learns or writes: in a
serving process it is a stall of every call in flight. `freeze_startup_heap` (service/server.py) keeps the
start-up heap out of its reach; what the process allocates later (caches, per-customer state, MLflow's
objects) is still walked. ``offerbandit serve`` and ``offerbandit learn`` install one :class:`GcPauseWatch`
for their process, so an operator sees the pauses in ``offerbandit_gc_pause_seconds`` and a slow call can be
matched with the log line of a collection at the same moment (bench/bench_latency.py does).
"""
from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from offerbandit.checks import check_scalar

__all__ = ["DEFAULT_LOGGED_PAUSE_S", "GC_PAUSE_LINE", "GcPauseWatch"]

log = logging.getLogger("offerbandit.gc")

#: Collections at least this long are logged (the stall bound the latency bench holds a server to).
DEFAULT_LOGGED_PAUSE_S = 0.010

#: The log line of a long collection (bench/bench_latency.py matches it; keep the two in step).
GC_PAUSE_LINE = "garbage collection of generation %d stopped every thread for %.1f ms (%d objects freed)"

#: Called with (generation, seconds) after each collection.
PauseObserver = Callable[[int, float], None]


class GcPauseWatch:
    """One process's watch on its garbage collector: ``install`` hooks ``gc.callbacks``, ``uninstall``
    unhooks it. The hook runs inside the collection (in whichever thread triggered it): it only reads the
    clock, calls ``observe`` and, past ``logged_pause_s``, logs."""

    def __init__(self, observe: PauseObserver, *, logged_pause_s: float = DEFAULT_LOGGED_PAUSE_S) -> None:
        self._observe = observe
        self.logged_pause_s = check_scalar(logged_pause_s, "logged_pause_s", low=0.0)
        self._began: float | None = None  # when the running collection began (CPython runs one at a time)
        self._installed = False
        self._lock = threading.Lock()

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._began = now
            return
        began, self._began = self._began, None
        if began is None:  # installed during a collection: its start was not seen
            return
        seconds = now - began
        self._observe(info["generation"], seconds)
        if seconds >= self.logged_pause_s:
            log.info(GC_PAUSE_LINE, info["generation"], seconds * 1e3, info["collected"])

    def install(self) -> "GcPauseWatch":
        with self._lock:
            if not self._installed:
                gc.callbacks.append(self._callback)
                self._installed = True
        return self

    def uninstall(self) -> None:
        with self._lock:
            if self._installed:
                gc.callbacks.remove(self._callback)
                self._installed = False
                self._began = None
