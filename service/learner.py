"""Online learning in the background: each logged event is learned exactly once, never on the
request path.

Two sources feed it: events claimed by a reward (aggregation ``first``; handed over by the engine
right after the reward's commit) and events whose reward window closed (polled from the log,
claimed through the writer so a race with a late reward cannot learn an event twice).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from decision_log import learning_event
from policies.contract import Policy, learn_in_batches
from policies.modes import ApprenticeGate
from policies.types import JointArm, LearningEvent
from service.engine import DecisionEngine

log = logging.getLogger("offerbandit.learner")


class OnlineLearner:
    def __init__(self, engine: DecisionEngine, *, batch_size: int = 64, poll_seconds: float = 1.0,
                 on_learned: Callable[[str, int], None] | None = None) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.on_learned = on_learned or (lambda campaign, n: None)
        self.learned = 0
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="online-learner", daemon=True)
        engine.on_learnable = self.enqueue

    def start(self) -> None:
        self._thread.start()

    def enqueue(self, seqs: Sequence[int]) -> None:
        with self._idle:
            self._pending += len(seqs)
        for seq in seqs:
            self._queue.put(seq)

    def _run(self) -> None:
        next_poll = 0.0
        while not self._stop.is_set():
            seqs = self._take(timeout=min(self.poll_seconds, max(0.0, next_poll - time.time())) or 0.01)
            if time.time() >= next_poll:
                seqs.extend(self._claim_due())
                next_poll = time.time() + self.poll_seconds
            if seqs:
                self._learn(seqs)

    def _take(self, timeout: float) -> list[int]:
        seqs: list[int] = []
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return seqs
        if item is not None:
            seqs.append(item)
        while len(seqs) < self.batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                seqs.append(item)
        return seqs

    def _claim_due(self) -> list[int]:
        try:
            due = self.engine.log.due_for_learning(time.time(), limit=5000)
            if not due:
                return []
            claimed = self.engine.log.claim_due(due, time.time(), self.engine.reward_defaults).result(30)
        except Exception:  # noqa: BLE001 - a failed poll is retried on the next tick
            log.exception("claiming events whose reward window closed failed")
            return []
        with self._idle:
            self._pending += len(claimed)
        return list(claimed)

    def _learn(self, seqs: list[int]) -> None:
        by_campaign: dict[str, list[LearningEvent]] = defaultdict(list)
        baselines: dict[str, list[JointArm | None]] = defaultdict(list)
        try:
            for decision in self.engine.log.learned_decisions(seqs):
                event = learning_event(decision, self.engine.reward_defaults.of(decision.campaign))
                if event is not None:
                    by_campaign[decision.campaign].append(event)
                    baselines[decision.campaign].append(decision.baseline)
            for campaign, events in by_campaign.items():
                runtime = self.engine.campaigns.get(campaign)
                if runtime is None:
                    continue
                policy, _ = runtime.live.current()
                if runtime.apprentice is not None:
                    _update_gate(runtime.apprentice, policy, events, baselines[campaign])
                learn_in_batches(policy, events, self.batch_size)
                self.learned += len(events)
                self.on_learned(campaign, len(events))
        except Exception:  # noqa: BLE001 - learning must never take the server down
            log.exception("online learning of %d events failed", len(seqs))
        finally:
            with self._idle:
                self._pending -= len(seqs)
                self._idle.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every handed-over event has been learned (tests and the demo use it)."""
        deadline = time.time() + timeout
        with self._idle:
            while self._pending > 0:
                left = deadline - time.time()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(10)


def _update_gate(gate: ApprenticeGate, policy: Policy, events: Sequence[LearningEvent],
                 baselines: Sequence[JointArm | None]) -> None:
    """Score the learned policy against the caller's baseline on events that named one, before
    learning them (so the comparison is on events the policy has not seen)."""
    for event, baseline in zip(events, baselines):
        if baseline is not None and baseline in event.arm_set.arms:
            gate.update(event, event.arm_set.arms.index(baseline), policy.pmf(event.context, event.arm_set))
