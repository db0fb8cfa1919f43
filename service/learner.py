"""Online learning in the background: each logged event is learned exactly once, never on the
request path.

Two sources feed it: events claimed by a reward (aggregation ``first``; handed over by the engine
right after the reward's commit, through a :class:`LearnQueue`) and events whose reward window closed
(polled from the log, claimed through the writer so a race with a late reward cannot learn an event
twice). What it learned is counted per campaign in a :class:`LearnedCounter` that the registry's
checkpointer reads.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Sequence

from decision_log import learning_event
from policies.contract import Policy
from policies.modes import ApprenticeGate
from policies.types import JointArm, LearningEvent
from service.engine import DecisionEngine
from service.model_guard import ModelGuard

log = logging.getLogger("offerbandit.learner")


class LearnQueue:
    """Log sequence numbers waiting to be learned, and how many handed-over events are not learned yet.

    Built before the engine (which puts into it) and the learner (which takes from it), so neither
    needs the other to exist first.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._idle = threading.Condition()
        self._pending = 0

    def enqueue(self, seqs: Sequence[int]) -> None:
        self.claimed(len(seqs))
        for seq in seqs:
            self._queue.put(seq)

    def claimed(self, n: int) -> None:
        """``n`` more events will be learned (claimed from the log, not put in the queue)."""
        with self._idle:
            self._pending += n

    def done(self, n: int) -> None:
        """``n`` handed-over events were learned (or given up on)."""
        with self._idle:
            self._pending -= n
            self._idle.notify_all()

    def take(self, batch_size: int, timeout: float) -> list[int]:
        """Up to ``batch_size`` sequence numbers: waits ``timeout`` for the first, takes the rest if ready."""
        seqs: list[int] = []
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return seqs
        if item is not None:
            seqs.append(item)
        while len(seqs) < batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                seqs.append(item)
        return seqs

    def wake(self) -> None:
        """Release a :meth:`take` waiting on an empty queue (at stop)."""
        self._queue.put(None)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.time() + timeout
        with self._idle:
            while self._pending > 0:
                left = deadline - time.time()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True


class LearnedCounter:
    """Events learned per campaign since its last checkpoint, and when that stretch of learning began.

    The learner adds to it; the registry's checkpointer waits until a campaign has ``every_events``
    (or its time is up), publishes a version and takes the published events off.
    """

    def __init__(self, every_events: int) -> None:
        self.every_events = every_events
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._window_start: dict[str, float] = {}
        self._due = threading.Event()

    def add(self, campaign: str, n: int) -> None:
        with self._lock:
            self._counts[campaign] = self._counts.get(campaign, 0) + n
            self._window_start.setdefault(campaign, time.time())
            if self._counts[campaign] >= self.every_events:
                self._due.set()

    def since_checkpoint(self, campaign: str) -> int:
        with self._lock:
            return self._counts.get(campaign, 0)

    def window_start(self, campaign: str) -> float | None:
        with self._lock:
            return self._window_start.get(campaign)

    def checkpointed(self, campaign: str, n: int) -> None:
        """``n`` of the counted events are in a published version now."""
        with self._lock:
            self._counts[campaign] = max(0, self._counts.get(campaign, 0) - n)
            self._window_start.pop(campaign, None)

    def restart(self, campaign: str) -> None:
        """The campaign serves another lineage: nothing learned so far counts towards its next checkpoint."""
        with self._lock:
            self._counts[campaign] = 0
            self._window_start.pop(campaign, None)

    def wait_due(self, timeout: float) -> bool:
        """True once a campaign reached ``every_events`` or :meth:`wake` was called; False after ``timeout``."""
        due = self._due.wait(timeout=timeout)
        self._due.clear()
        return due

    def wake(self) -> None:
        self._due.set()


class OnlineLearner:
    """Learns handed-over and due events in batches; every ``policy.learn`` goes through ``guard``
    (`service.model_guard.ModelGuard`: probe, roll back, quarantine), built here unless given."""

    def __init__(self, engine: DecisionEngine, handed: LearnQueue, counter: LearnedCounter, *,
                 batch_size: int = 64, poll_seconds: float = 1.0, guard: ModelGuard | None = None) -> None:
        self.engine = engine
        self.guard = guard or ModelGuard(lambda seqs: engine.log.quarantine(seqs, time.time()).result(30))
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.counter = counter
        self.learned = 0
        self._handed = handed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="online-learner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        next_poll = 0.0
        while not self._stop.is_set():
            wait = min(self.poll_seconds, max(0.0, next_poll - time.time())) or 0.01
            seqs = self._handed.take(self.batch_size, timeout=wait)
            if time.time() >= next_poll:
                seqs.extend(self._claim_due())
                next_poll = time.time() + self.poll_seconds
            if seqs:
                self._learn(seqs)

    def _claim_due(self) -> list[int]:
        try:
            due = self.engine.log.due_for_learning(time.time(), limit=5000)
            if not due:
                return []
            claimed = self.engine.log.claim_due(due, time.time(), self.engine.reward_defaults).result(30)
        except Exception:  # noqa: BLE001 - a failed poll is retried on the next tick
            log.exception("claiming events whose reward window closed failed")
            return []
        self._handed.claimed(len(claimed))
        return list(claimed)

    def _learn(self, seqs: list[int]) -> None:
        by_campaign: dict[str, list[LearningEvent]] = defaultdict(list)
        seqs_of: dict[str, list[int]] = defaultdict(list)
        baselines: dict[str, list[JointArm | None]] = defaultdict(list)
        try:
            for decision in self.engine.log.learned_decisions(seqs):
                defaults = self.engine.reward_defaults
                event = learning_event(decision, defaults.of(decision.campaign), defaults.range_of(decision.campaign))
                if event is not None:
                    by_campaign[decision.campaign].append(event)
                    seqs_of[decision.campaign].append(decision.seq)
                    baselines[decision.campaign].append(decision.baseline)
            for campaign, events in by_campaign.items():
                runtime = self.engine.campaigns.get(campaign)
                if runtime is None:
                    continue
                policy, _ = runtime.live.current()
                if runtime.apprentice is not None:
                    _update_gate(runtime.apprentice, policy, events, baselines[campaign])
                learned = 0
                for start in range(0, len(events), self.batch_size):
                    learned += self.guard.learn(campaign, runtime.live, events[start:start + self.batch_size],
                                                seqs_of[campaign][start:start + self.batch_size]).learned
                self.learned += learned
                self.counter.add(campaign, learned)
        except Exception:  # noqa: BLE001 - learning must never take the server down
            log.exception("online learning of %d events failed", len(seqs))
        finally:
            self._handed.done(len(seqs))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every handed-over event has been learned (tests and the demo use it)."""
        return self._handed.wait_idle(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._handed.wake()
        if self._thread.is_alive():
            self._thread.join(10)


def _update_gate(gate: ApprenticeGate, policy: Policy, events: Sequence[LearningEvent],
                 baselines: Sequence[JointArm | None]) -> None:
    """Score the learned policy against the caller's baseline on events that named one, before
    learning them (so the comparison is on events the policy has not seen)."""
    for event, baseline in zip(events, baselines):
        if baseline is not None and baseline in event.arm_set.arms:
            gate.update(event, event.arm_set.arms.index(baseline), policy.pmf(event.context, event.arm_set))
