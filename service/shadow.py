"""Shadow scoring: the challenger computes its pmf on live requests, off the request path.

After a decision is committed, the engine hands (event, context, eligible arms, chosen index) to
a bounded :class:`ShadowQueue` and returns; a background thread asks the campaign's challenger for its
pmf over the *same eligible arms* and logs it in ``shadow_scores`` beside the champion's. The
challenger can then be evaluated exactly on the traffic the champion served (its probability of
the logged arm is what importance weighting needs). When the queue is full, items are dropped and
counted: shadow scoring must never slow serving down.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import numpy as np

from decision_log import ShadowScore, pmf_to_blob
from service.engine import DecisionEngine, ShadowItem

log = logging.getLogger("offerbandit.shadow")


class ShadowQueue:
    """Committed decisions waiting for the challenger; full means dropped (and counted), never waited for.

    Built before the engine (which offers to it) and the scorer (which takes from it).
    """

    def __init__(self, max_items: int = 10000) -> None:
        self._queue: queue.Queue[ShadowItem | None] = queue.Queue(maxsize=max_items)
        self.dropped = 0

    def offer(self, items: list[ShadowItem]) -> None:
        for item in items:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self.dropped += 1

    def get(self) -> ShadowItem | None:
        """The next item; None once :meth:`close` was called."""
        return self._queue.get()

    def get_nowait(self) -> ShadowItem | None:
        """The next item if one is waiting (raises ``queue.Empty`` otherwise); None after :meth:`close`."""
        return self._queue.get_nowait()

    def empty(self) -> bool:
        return self._queue.empty()

    def close(self) -> None:
        try:
            self._queue.put(None, timeout=1)
        except queue.Full:
            pass


class ShadowScorer:
    def __init__(self, engine: DecisionEngine, items: ShadowQueue) -> None:
        self.engine = engine
        self._queue = items
        self.scored = 0
        self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < 256:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._score(batch)
                    return
                batch.append(nxt)
            self._score(batch)

    def _score(self, batch: list[ShadowItem]) -> None:
        rows = []
        for item in batch:
            challenger = self.engine.campaigns[item.campaign].challenger
            if challenger is None:
                continue
            policy, version = challenger.current()
            try:
                pmf = np.asarray(policy.pmf(item.context, item.arm_set), dtype=np.float64)
            except Exception:  # noqa: BLE001 - a broken challenger must not affect serving
                log.exception("challenger %s failed to score event %s", version, item.event_id)
                continue
            rows.append(ShadowScore(item.event_id, version, pmf_to_blob(pmf), float(pmf[item.chosen]), time.time()))
        if rows:
            try:
                self.engine.log.insert_shadow_scores(rows).result(30)
                self.scored += len(rows)
            except Exception:  # noqa: BLE001
                log.exception("logging %d shadow scores failed", len(rows))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self._queue.empty():
                time.sleep(0.05)
                if self._queue.empty():
                    return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        self._queue.close()
        if self._thread.is_alive():
            self._thread.join(10)
