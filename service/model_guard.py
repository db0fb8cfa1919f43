"""The learner's guard: nothing learned can make a campaign unavailable (issue 14, item 1).

Around every ``policy.learn(batch)`` of the online learner, :class:`ModelGuard`

1. probes the model on the batch's own (context, arm set) pairs after the update: every pmf must
   be finite, non-negative and sum to 1; on a sample of them (``sample_size``, also probed before)
   a pmf must not have turned *degenerate* where it was not before (flattened to uniform, or
   collapsed onto one arm) -- the shapes a huge reward or feature value leaves in a VW model. A
   sampled context the model cannot predict on even before the update is quarantined unlearned;
2. rolls an update that fails the probe back: the model is rebuilt from a snapshot (saved bytes)
   plus a replay of the events learned since it, swapped in, and the batch is learned again one
   event at a time, each probed, so only the offending event(s) are found;
3. quarantines the offending events in the log (``decisions.quarantined_at``): they are never
   learned or replayed again (online, by catch-up after a load, by offline targets), and counted in
   ``offerbandit_quarantined_events_total``.

Snapshots are kept cheaply: ``save()`` of a VW model walks its whole weight table (about 0.2 s at
``-b 24`` whatever was learned), so the guard saves one only when it first sees a model and then
every ``snapshot_every_events`` learned events, and keeps the events learned since (a rollback
replays them). :func:`probe_usable` is the same probe for checkpoints: a model whose pmfs are not
finite is never published.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from offerbandit.errors import ModelError
from policies.contract import Policy
from policies.factory import reload_like
from policies.types import ArmSet, DecisionContext, LearningEvent
from service.campaigns import CampaignRuntime, LivePolicy

__all__ = ["GuardOutcome", "ModelGuard", "probe_usable", "verdict"]

log = logging.getLogger("offerbandit.learner")

Item = tuple[DecisionContext, ArmSet]
_SUM_TOLERANCE = 1e-6
_FLAT = 1e-12  # a pmf whose entries differ by no more than this is uniform


@dataclass(frozen=True, slots=True)
class GuardOutcome:
    """What one guarded batch did: events learned, seqs quarantined, whether the model was rolled back."""

    learned: int
    quarantined: tuple[int, ...] = ()
    rolled_back: bool = False


@dataclass
class _Snapshot:
    """A model as saved bytes, the live object it was taken of, and the events learned since."""

    policy: Policy
    model: bytes
    tail: list[LearningEvent] = field(default_factory=list)


def _probe(policy: Policy, items: Sequence[Item]) -> list[np.ndarray]:
    """The policy's pmfs on ``items`` from everything it learned (a double-buffered policy's learning
    workspace: what the next publish or save would serve); ModelError when it cannot give them."""
    score = getattr(policy, "learned_pmf_batch", policy.pmf_batch)
    try:
        return [np.asarray(p, dtype=np.float64) for p in score(list(items))]
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to predict is an unusable model
        raise ModelError(f"the model cannot predict: {exc}") from exc


def _probe_each(policy: Policy, items: Sequence[Item]) -> list[np.ndarray | None]:
    """Each item's pmf, or None where the policy cannot give a proper one."""
    found: list[np.ndarray | None] = []
    for item in items:
        try:
            pmf = _probe(policy, [item])
        except ModelError:
            found.append(None)
            continue
        found.append(pmf[0] if verdict(None, pmf) is None else None)
    return found


def _sample(n: int, size: int) -> list[int]:
    """Up to ``size`` indices spread evenly over ``range(n)`` (all of them when ``n <= size``)."""
    if n <= size:
        return list(range(n))
    return sorted({round(k * (n - 1) / (size - 1)) for k in range(size)})


def _neutral(item: Item) -> Item:
    """The item's arm set with an empty context of the same campaign."""
    context, arm_set = item
    return DecisionContext(user_key="offerbandit-probe", campaign=context.campaign), arm_set


def _uniform(pmf: np.ndarray) -> bool:
    return float(pmf.max() - pmf.min()) <= _FLAT


def _one_hot(pmf: np.ndarray) -> bool:
    return int(np.count_nonzero(pmf)) == 1


def verdict(before: Sequence[np.ndarray | None] | None, after: Sequence[np.ndarray]) -> str | None:
    """Why ``after`` (pmfs after an update) is unusable, or None when it is fine.

    Unusable: an entry not finite or negative, a sum off 1, or a pmf (over 2+ arms) that was neither
    uniform nor one-hot ``before`` and now is uniform or one-hot (only where ``before`` has an entry).
    """
    for index, pmf in enumerate(after):
        total = float(pmf.sum()) if pmf.size else 0.0
        if not np.isfinite(pmf).all() or (pmf < 0).any() or abs(total - 1.0) > _SUM_TOLERANCE:
            return f"probe {index}: the pmf is not a distribution (sum {total})"
        old = None if before is None else before[index]
        if old is None or pmf.size < 2:
            continue
        if _uniform(old) or _one_hot(old):
            continue
        if _uniform(pmf):
            return f"probe {index}: the pmf flattened to uniform"
        if _one_hot(pmf):
            return f"probe {index}: the pmf collapsed onto one arm"
    return None


def probe_usable(policy: Policy, runtime: CampaignRuntime) -> None:
    """ModelError unless ``policy`` gives finite pmfs on the campaign's catalogue (checkpoints call it)."""
    context = DecisionContext(user_key="offerbandit-probe", campaign=runtime.config.name)
    try:
        problem = verdict(None, _probe(policy, [(context, runtime.catalog_arms)]))
    except ModelError as exc:
        problem = str(exc)
    if problem is not None:
        raise ModelError(f"campaign {runtime.config.name}: the model is not usable ({problem}); not published")


def _items(events: Sequence[LearningEvent]) -> tuple[list[Item], list[int]]:
    """The distinct (context, arm set) pairs of a batch and, per event, the index of its pair."""
    items: list[Item] = []
    index_of: dict[tuple[int, int], int] = {}
    positions = []
    for event in events:
        key = (id(event.context), id(event.arm_set))
        if key not in index_of:
            index_of[key] = len(items)
            items.append((event.context, event.arm_set))
        positions.append(index_of[key])
    return items, positions


class ModelGuard:
    """Guards each campaign's live model against updates that break it (see the module docstring).

    ``quarantine(seqs)`` takes events out of learning for good (the log's named write);
    ``on_quarantine(campaign, n)`` and ``on_rollback(campaign)`` count them. One learner thread calls
    :meth:`learn`; the lock only protects the snapshots against :meth:`forget`.
    """

    def __init__(self, quarantine: Callable[[Sequence[int]], object], *,
                 on_quarantine: Callable[[str, int], None] | None = None,
                 on_rollback: Callable[[str], None] | None = None,
                 snapshot_every_events: int = 4096, sample_size: int = 8,
                 publish_gap_factor: float = 20.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._quarantine = quarantine
        self._on_quarantine = on_quarantine or (lambda campaign, n: None)
        self._on_rollback = on_rollback or (lambda campaign: None)
        self.snapshot_every_events = snapshot_every_events
        self.sample_size = sample_size
        self._snapshots: dict[str, _Snapshot] = {}
        self._lock = threading.Lock()
        self.snapshot_seconds = 0.0  # time spent saving snapshots (measured, for the report)
        self.snapshots_taken = 0
        self._clock = clock
        self.publish_gap_factor = publish_gap_factor
        #: campaign -> when its double buffer last published (or tried) and how long that took (seconds)
        self._published: dict[str, tuple[float, float]] = {}
        self.publish_seconds = 0.0
        self.longest_publish_seconds = 0.0
        #: campaigns whose double-buffered live model learned checked updates not served yet -> its
        #: ``publish_every_seconds``
        self._unpublished: dict[str, float] = {}
        self.publishes = 0

    def _snapshot(self, campaign: str, policy: Policy) -> _Snapshot:
        with self._lock:
            snapshot = self._snapshots.get(campaign)
        if snapshot is None or snapshot.policy is not policy:
            started = time.perf_counter()
            snapshot = _Snapshot(policy, policy.save())
            self.snapshot_seconds += time.perf_counter() - started
            self.snapshots_taken += 1
            with self._lock:
                self._snapshots[campaign] = snapshot
        return snapshot

    def forget(self, campaign: str) -> None:
        with self._lock:
            self._snapshots.pop(campaign, None)

    def learn(self, campaign: str, live: LivePolicy, events: Sequence[LearningEvent],
              seqs: Sequence[int]) -> GuardOutcome:
        """Learn ``events`` (logged as ``seqs``) into ``live``'s policy, or roll back and quarantine.

        An event whose context the model cannot even predict on (a pmf that is not a distribution
        *before* the update) is quarantined without being learned -- unless the model fails on every
        context, a neutral one included: then it was unusable already and is not this batch's fault."""
        policy, _ = live.current()
        snapshot = self._snapshot(campaign, policy)
        items, positions = _items(events)
        sampled = _sample(len(items), self.sample_size)
        found = _probe_each(policy, [items[i] for i in sampled])
        if found and all(b is None for b in found) and _probe_each(policy, [_neutral(items[0])])[0] is None:
            log.warning("campaign %s: the model was unusable before this batch; learning it unguarded", campaign)
            policy.learn(list(events))
            return GuardOutcome(len(events))
        unusable = {sampled[k] for k, pmf in enumerate(found) if pmf is None}
        unpredictable = [int(seq) for seq, pos in zip(seqs, positions) if pos in unusable]
        if unpredictable:
            log.error("campaign %s: the model cannot predict on the context of %d event(s); quarantined unlearned",
                      campaign, len(unpredictable))
            self._quarantine(unpredictable)
            self._on_quarantine(campaign, len(unpredictable))
            kept = [(e, q) for e, q, pos in zip(events, seqs, positions) if pos not in unusable]
            events, seqs = [e for e, _ in kept], [q for _, q in kept]
            if not events:
                return GuardOutcome(0, tuple(unpredictable))
            return self._merge(unpredictable, self.learn(campaign, live, events, seqs))
        before: list[np.ndarray | None] = [None] * len(items)
        for k, index in enumerate(sampled):
            before[index] = found[k]
        problem = self._try(policy, events, items, before)
        if problem is None:
            self._keep(campaign, snapshot, policy, events)
            self._checked(campaign, policy)
            return GuardOutcome(len(events))
        log.error("campaign %s: an update of %d events broke the model (%s); rolling back", campaign,
                  len(events), problem)
        self._on_rollback(campaign)
        return self._one_by_one(campaign, live, snapshot, events, seqs, before)

    @staticmethod
    def _merge(quarantined: Sequence[int], outcome: GuardOutcome) -> GuardOutcome:
        return GuardOutcome(outcome.learned, tuple(quarantined) + outcome.quarantined, outcome.rolled_back)

    @staticmethod
    def _try(policy: Policy, events: Sequence[LearningEvent], items: Sequence[Item],
             before: Sequence[np.ndarray]) -> str | None:
        try:
            policy.learn(list(events))
            return verdict(before, _probe(policy, items))
        except Exception as exc:  # noqa: BLE001 - a learn that raises may have left the model half-updated
            return f"{type(exc).__name__}: {exc}"

    def publish_checked(self, campaign: str, policy: Policy) -> bool:
        """Let decisions see the checked updates of a double-buffered ``policy`` (the live one) when some are
        unpublished and the campaign's publish gap passed since its last publish; True when it published.

        The gap: ``publish_gap_factor`` times how long the last publish took, at most ``publish_every_seconds``
        (decisions see what was learned at most that late) -- publishing then takes at most 1/factor of
        the learner's time. Each publish loads a fresh serving workspace, one VW call of ~4-6 ms holding the
        GIL whatever ``bits`` (VW's own set-up), plus re-parsing the arms it knew; publishing after every
        batch the learner caught up with made it 35% of the server's GIL samples under steady rewards (py-spy,
        bench_latency (b)), the tail of every Decide. A publish that fails leaves the served model in place;
        the next checked update tries again."""
        with self._lock:
            if campaign not in self._unpublished or getattr(policy, "double_buffer", None) is None:
                return False
            if self._clock() < self._due_at(campaign):
                return False
            del self._unpublished[campaign]  # updates checked from now on are not in this publish's bytes
        started = time.perf_counter()
        try:
            policy.publish()
        except ModelError as exc:  # the serving model stays
            log.error("campaign %s: the learned model was not published to decisions: %s", campaign, exc)
            return False
        finally:
            took = time.perf_counter() - started
            with self._lock:
                self._published[campaign] = (self._clock(), took)
        self.publishes += 1
        self.publish_seconds += took
        self.longest_publish_seconds = max(self.longest_publish_seconds, took)
        return True

    def _due_at(self, campaign: str) -> float:  # call with the lock held
        last = self._published.get(campaign)
        if last is None:
            return float("-inf")
        at, took = last
        return at + min(self._unpublished[campaign], self.publish_gap_factor * took)

    def publish_due_in(self) -> float | None:
        """Seconds until the next checked update is due to be published (0: now); None when none waits."""
        with self._lock:
            if not self._unpublished:
                return None
            return max(0.0, min(self._due_at(campaign) for campaign in self._unpublished) - self._clock())

    def _checked(self, campaign: str, policy: Policy) -> None:
        buffer = getattr(policy, "double_buffer", None)
        if buffer is None:  # it serves what it learned
            return
        with self._lock:
            self._unpublished[campaign] = buffer.publish_every_seconds

    def _keep(self, campaign: str, snapshot: _Snapshot, policy: Policy, events: Sequence[LearningEvent]) -> None:
        snapshot.tail.extend(events)
        if len(snapshot.tail) >= self.snapshot_every_events:
            with self._lock:
                self._snapshots.pop(campaign, None)
            self._snapshot(campaign, policy)

    def _restore(self, campaign: str, live: LivePolicy, broken: Policy, snapshot: _Snapshot) -> Policy | None:
        """The snapshot plus its replayed tail, swapped in for ``broken`` (None if another model was
        swapped in meanwhile: that one is not ours to touch)."""
        restored = reload_like(broken, snapshot.model)
        for start in range(0, len(snapshot.tail), 256):
            restored.learn(snapshot.tail[start:start + 256])
        if not live.swap_if(broken, restored):
            return None
        self._checked(campaign, restored)  # the replayed tail is learned, not yet served
        fresh = _Snapshot(restored, restored.save())
        with self._lock:
            self._snapshots[campaign] = fresh
        return restored

    def _one_by_one(self, campaign: str, live: LivePolicy, snapshot: _Snapshot, events: Sequence[LearningEvent],
                    seqs: Sequence[int], before: Sequence[np.ndarray]) -> GuardOutcome:
        broken, _ = live.current()
        policy = self._restore(campaign, live, broken, snapshot)
        if policy is None:
            log.warning("campaign %s: another model was swapped in during the rollback; batch dropped", campaign)
            return GuardOutcome(0, rolled_back=True)
        items, positions = _items(events)
        learned, bad = 0, []
        for event, seq, position in zip(events, seqs, positions):
            problem = self._try(policy, [event], [items[position]], [before[position]])
            if problem is None:
                with self._lock:
                    current = self._snapshots.get(campaign)
                if current is not None:
                    current.tail.append(event)
                learned += 1
                continue
            log.error("campaign %s: event seq %d broke the model (%s); quarantined", campaign, seq, problem)
            bad.append(int(seq))
            with self._lock:
                current = self._snapshots[campaign]
            policy = self._restore(campaign, live, policy, current)
            if policy is None:
                break
        if bad:
            self._quarantine(bad)
            self._on_quarantine(campaign, len(bad))
        return GuardOutcome(learned, tuple(bad), rolled_back=True)
