"""Online learning in the background: each logged event is learned exactly once, never on the
request path.

Two sources feed it: events claimed by a reward (aggregation ``first``; handed over by the engine
right after the reward's commit, through a :class:`LearnQueue`) and events whose reward window closed
(polled from the log, claimed through the writer so a race with a late reward cannot learn an event
twice). What it learned is counted per campaign in a :class:`LearnedCounter` that the registry's
checkpointer reads.

The learner alone gives each event its ``learn_seq`` (the order of learning), in a write committed
right before ``policy.learn``, both under :attr:`LearnedCounter.learning`: the lock a checkpoint holds
while it takes the model bytes and the highest learn_seq they include, and a swap holds while it
catches a new model up. So what a checkpoint says it contains is exactly what it learned. An event
claimed but not learned when the server stopped has no learn_seq; the next start learns it.

The learner needs a :class:`LearningState` (the log, the campaigns' runtimes, the reward defaults), not a
decision engine: inside ``serve`` the engine is that state; ``offerbandit learn`` builds one without an
engine (:func:`service.bootstrap.build_learner`) and sets ``follow_log``: rewards then reach other processes,
so every poll also learns the events they made final (final, no learn_seq yet), and reports the lag.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from decision_log import DecisionLog, RewardDefaults, learning_event
from policies.contract import Policy
from policies.modes import ApprenticeGate
from policies.types import JointArm, LearningEvent
from service.campaigns import CampaignRuntime
from service.model_guard import ModelGuard

__all__ = ["LearnLag", "LearnQueue", "LearnedCounter", "LearnerState", "LearningState", "OnlineLearner"]

log = logging.getLogger("offerbandit.learner")
_SWEEP_CHUNK = 1000
#: How long the learner waits for more events after the first one of a batch. Rewards arriving one by one
#: made batches of one or two events, each paying the per-batch work again (a log read, a learn_seq commit,
#: the guard's probes before and after: ~60% of the learner's GIL samples in bench_latency (b), py-spy);
#: events are learned at most this much later.
GATHER_SECONDS = 0.05


class LearningState(Protocol):
    """What learning and the registry link use of a process: its log, campaigns and reward defaults
    (a `service.engine.DecisionEngine` is one; so is a :class:`LearnerState`)."""

    @property
    def log(self) -> DecisionLog: ...

    @property
    def campaigns(self) -> Mapping[str, CampaignRuntime]: ...

    @property
    def reward_defaults(self) -> RewardDefaults: ...


@dataclass(frozen=True)
class LearnerState:
    """The learning state of ``offerbandit learn``: a log and the campaigns, no engine (it never decides)."""

    log: DecisionLog
    campaigns: Mapping[str, CampaignRuntime]
    reward_defaults: RewardDefaults


@dataclass(frozen=True, slots=True)
class LearnLag:
    """How far learning is behind the log: final events without a learn_seq, and the seconds since the
    oldest of them became final (0 when none)."""

    events: int
    seconds: float


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

    def take(self, batch_size: int, timeout: float, gather: float = 0.0) -> list[int]:
        """Up to ``batch_size`` sequence numbers: waits ``timeout`` for the first, then up to ``gather``
        seconds more for the rest (0: takes only those ready)."""
        seqs: list[int] = []
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return seqs
        if item is None:
            return seqs
        seqs.append(item)
        until = time.monotonic() + gather
        while len(seqs) < batch_size:
            try:
                left = until - time.monotonic()
                item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:  # woken to stop
                break
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
        self._learn_seq: dict[str, int] = {}
        self._due = threading.Event()
        #: Held while events are learned into a live model, while one is swapped in (after its catch-up)
        #: and while a checkpoint takes a live model's bytes with the learn_seq they include.
        self.learning = threading.RLock()

    def add(self, campaign: str, n: int, learn_seq: int | None = None) -> None:
        """``n`` more events learned into the campaign's live model, the last with ``learn_seq``."""
        with self._lock:
            self._counts[campaign] = self._counts.get(campaign, 0) + n
            self._window_start.setdefault(campaign, time.time())
            if learn_seq is not None:
                self._learn_seq[campaign] = max(self._learn_seq.get(campaign, 0), int(learn_seq))
            if self._counts[campaign] >= self.every_events:
                self._due.set()

    def learn_seq(self, campaign: str) -> int:
        """The highest learn_seq the campaign's live model includes (0: none)."""
        with self._lock:
            return self._learn_seq.get(campaign, 0)

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

    def restart(self, campaign: str, learn_seq: int = 0) -> None:
        """The campaign serves another lineage, which includes learn_seqs up to ``learn_seq``: nothing
        learned so far counts towards its next checkpoint."""
        with self._lock:
            self._counts[campaign] = 0
            self._window_start.pop(campaign, None)
            self._learn_seq[campaign] = int(learn_seq)

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

    def __init__(self, state: LearningState, handed: LearnQueue, counter: LearnedCounter, *,
                 batch_size: int = 64, poll_seconds: float = 1.0, guard: ModelGuard | None = None,
                 follow_log: bool = False, on_lag: Callable[[LearnLag], None] | None = None) -> None:
        self.state = state
        self.guard = guard or ModelGuard(lambda seqs: state.log.quarantine(seqs, time.time()).result(30))
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.counter = counter
        self.learned = 0
        self.lag = LearnLag(0, 0.0)
        self._follow_log = follow_log
        self._on_lag = on_lag or (lambda lag: None)
        self._handed = handed
        # handed-over events taken, and those of them learned, waiting for the publish that serves them
        self._unserved_handed = 0
        self._unserved_learned = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="online-learner", daemon=True)

    def prepare(self) -> None:
        """Before anything learns or loads: number the learned events of a log written by older code."""
        numbered = self.state.log.backfill_learn_seq().result(600)
        if numbered:
            log.warning("numbered %d events learned before learn_seq existed, in the order they were claimed",
                        numbered)

    def start(self) -> None:
        self._thread.start()

    def _recover(self) -> None:
        """Learn the events claimed but not learned when the server last stopped (they have no learn_seq)."""
        recovered = self._sweep()
        if recovered:
            log.warning("learned %d events claimed but not learned before the last stop", recovered)

    def _sweep(self) -> int:
        """Learn every final event without a learn_seq (claimed before a stop, or made final by another
        process), in claim order; reports the lag first. How many were learned."""
        try:
            pending = list(self.state.log.unlearned_final(chunk=_SWEEP_CHUNK))
            oldest = self.state.log.decisions_by_seq(pending[:1]) if pending else []
            since = oldest[0].learned_at if oldest and oldest[0].learned_at is not None else None
            self._report_lag(LearnLag(len(pending), 0.0 if since is None else max(0.0, time.time() - since)))
            learned = 0
            for start in range(0, len(pending), _SWEEP_CHUNK):
                if self._stop.is_set():
                    break
                learned += self._learn_claimed(pending[start:start + _SWEEP_CHUNK])
            return learned
        except Exception:  # noqa: BLE001 - the rest is retried at the next sweep
            log.exception("learning the final events not learned yet failed")
            return 0

    def _report_lag(self, lag: LearnLag) -> None:
        self.lag = lag
        try:
            self._on_lag(lag)
        except Exception:  # noqa: BLE001 - a metrics problem must not stop learning
            log.exception("reporting the learning lag failed")

    def _learn_claimed(self, seqs: list[int]) -> int:
        self._handed.claimed(len(seqs))
        return self._learn(seqs)

    def _run(self) -> None:
        self._recover()
        next_poll = time.time() + self.poll_seconds if self._follow_log else 0.0  # following: it just swept
        while not self._stop.is_set():
            wait = min(self.poll_seconds, max(0.0, next_poll - time.time()))
            publish_in = self.guard.publish_due_in()
            if publish_in is not None:  # wake for the publish that serves what was learned
                wait = min(wait, publish_in)
            seqs = self._handed.take(self.batch_size, timeout=wait or 0.01, gather=GATHER_SECONDS)
            if time.time() >= next_poll:
                due = self._claim_due()
                if self._follow_log:  # learned by the sweep, with the events other processes made final
                    self._sweep()
                else:
                    self._handed.claimed(len(due))
                    seqs.extend(due)
                next_poll = time.time() + self.poll_seconds
            if seqs:
                self._learn(seqs)
            else:  # idle: serve the checked updates whose publish is due
                self._publish()

    def _publish(self) -> None:
        """Publish the campaigns' checked updates to decisions when due (double-buffered models: publishes
        spaced by the guard's publish gap, see ModelGuard.publish_checked). Handed-over events count as
        done, and learned ones count in ``learned``, once nothing learned waits to be served (`wait_idle` and
        ``learned``: learned means served)."""
        for campaign, runtime in self.state.campaigns.items():
            try:
                with self.counter.learning:
                    self.guard.publish_checked(campaign, runtime.live.current()[0])
            except Exception:  # noqa: BLE001 - publishing must never take the server down
                log.exception("campaign %s: publishing the learned model to decisions failed", campaign)
        if self._unserved_handed and self.guard.publish_due_in() is None:
            self.learned += self._unserved_learned
            self._handed.done(self._unserved_handed)
            self._unserved_handed = self._unserved_learned = 0

    def _claim_due(self) -> list[int]:
        """Claim the events whose reward window closed (final now); their seqs."""
        try:
            due = self.state.log.due_for_learning(time.time(), limit=5000)
            if not due:
                return []
            return list(self.state.log.claim_due(due, time.time(), self.state.reward_defaults).result(30))
        except Exception:  # noqa: BLE001 - a failed poll is retried on the next tick
            log.exception("claiming events whose reward window closed failed")
            return []

    def _learn(self, seqs: list[int]) -> int:
        """Learn the events ``seqs`` (handed over or claimed); how many were learned."""
        found: list[tuple[int, str, LearningEvent, JointArm | None]] = []
        total = 0
        try:
            for decision in self.state.log.learned_decisions(seqs):
                if decision.campaign not in self.state.campaigns:
                    continue
                defaults = self.state.reward_defaults
                event = learning_event(decision, defaults.of(decision.campaign), defaults.range_of(decision.campaign))
                if event is not None:
                    found.append((decision.seq, decision.campaign, event, decision.baseline))
            if not found:
                return 0
            with self.counter.learning:  # the learn_seqs given and the events learned are one step
                given = self.state.log.assign_learn_seq([seq for seq, *_ in found]).result(30)
                by_campaign: dict[str, list[tuple[int, int, LearningEvent, JointArm | None]]] = defaultdict(list)
                for seq, campaign, event, baseline in found:
                    if seq in given:  # an event that already has a learn_seq was learned: never again
                        by_campaign[campaign].append((given[seq], seq, event, baseline))
                for campaign, items in by_campaign.items():
                    items.sort(key=lambda item: item[0])
                    events = [event for _, _, event, _ in items]
                    runtime = self.state.campaigns[campaign]
                    policy, _ = runtime.live.current()
                    if runtime.apprentice is not None:
                        _update_gate(runtime.apprentice, policy, events, [baseline for *_, baseline in items])
                    learned = 0
                    for start in range(0, len(items), self.batch_size):
                        chunk = items[start:start + self.batch_size]
                        learned += self.guard.learn(campaign, runtime.live, [event for _, _, event, _ in chunk],
                                                    [seq for _, seq, _, _ in chunk]).learned
                    total += learned
                    self.counter.add(campaign, learned, items[-1][0])
        except Exception:  # noqa: BLE001 - learning must never take the server down
            log.exception("online learning of %d events failed", len(seqs))
        finally:
            self._unserved_handed += len(seqs)
            self._unserved_learned += total
            self._publish()  # `done` once served (or nothing to serve)
        return total

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
