"""The rollback guardrail, running: judges each freshly promoted champion against the champion it replaced,
on the traffic the new one serves, and rolls it back when the sequential test of `service.guardrail` trips.

- **Who.** The process that publishes (the embedded ``serve`` that learns, or ``offerbandit learn``), in a
  thread of its own, every ``[guardrail] check_every_seconds`` -- never the request path. It acts only
  while it may publish (``learn``: while it holds the learner lock).
- **What is judged.** The champion put there by the last operator move when that move is a ``promote``
  with a champion before it: the promoted version's lineage (it and the checkpoints descending from it)
  against the version ``rollback`` would return to (the newest of the replaced lineage). A rollback --
  an operator's or the guardrail's own -- is never judged; a judged champion keeps being judged only
  against its own predecessor, until the next operator move.
- **The previous champion's value on the same traffic** is scored when each decision is first read: the
  previous version is frozen, and the log holds each decision as it was made (context, eligible arms,
  the served pmf and its policy component), so its pmf on the logged decision is exactly what it would
  have given then. That is exact and costs one pmf per decision, in this thread; shadow scoring would
  need every replica to load it, the request path to hand it every decision and the ``challenger``
  alias, which belongs to operators.
- **Order.** A decision enters the test once its reward window has closed (``learn_due_at`` plus a grace
  for commits in flight), in the order windows close -- never earlier because a reward came: under
  ``first`` rewarded decisions settle at once, and taking them first would bias the difference. Its
  reward is then final (the default when none came). Deferred decisions not yet activated when first
  read are left out (their windows have not opened; leaving them out does not depend on rewards).
- **Restarts.** The judgement is a function of the log and the registry, rebuilt from them at start.
- **Trip.** `PolicyRegistry.guardrail_rollback` (compare-and-set, who ``guardrail``, why = the numbers;
  an alias move, tags, a ``guardrail_rollback`` metric with the estimate and bounds); the servers follow
  the alias like any rollback, and this process's watcher is asked to poll at once.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from decision_log import AliasMove, LogFilter
from offerbandit.errors import InvalidInput
from policies.contract import Policy
from policies.factory import load_policy
from policies.sampler import HOLDOUT
from policy_registry import CHAMPION, PolicyRegistry
from policy_registry.ledger import OPERATOR_MOVES
from service.guardrail import GuardrailConfig, PairedTest, Verdict, difference
from service.learner import LearningState

__all__ = ["GuardrailStatus", "GuardrailWatch", "OVERLAP_SECONDS", "SETTLE_GRACE_SECONDS"]

log = logging.getLogger("offerbandit.guardrail")
#: Decisions are read again this far back at every check (a replica may commit a little out of order).
OVERLAP_SECONDS = 10.0
#: A decision's window counts as closed this long after its end (rewards and claims in flight commit).
SETTLE_GRACE_SECONDS = 2.0
_SETTLE_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class GuardrailStatus:
    """One campaign's judgement: the promoted version, the version it is compared with, the test's state,
    how many decisions wait for their window, and whether the guardrail rolled it back."""

    campaign: str
    judged: str
    against: str
    verdict: Verdict
    pending: int
    rolled_back: bool


@dataclass(frozen=True, slots=True)
class _Pending:
    settles_at: float
    new: float  # π_new(a|x): the judged lineage's policy component, as logged
    previous: float  # π_prev(a|x): the previous champion on the logged decision
    served: float  # p(a|x): the logged probability


class _Judgement:
    """The running judgement of one promote (mutable; owned by the guardrail's thread)."""

    def __init__(self, move: AliasMove, target: str, previous: Policy, test: PairedTest) -> None:
        self.key = (move.to_version, move.moved_at)
        self.judged = move.to_version
        self.target = target
        self.previous = previous
        self.test = test
        self.since = move.moved_at
        self.cursor = move.moved_at
        self.seen: dict[int, float] = {}
        self.pending: dict[int, _Pending] = {}
        self.lineage: frozenset[str] = frozenset({move.to_version})
        self.rolled_back = False


class GuardrailWatch:
    """Checks every campaign every ``config.check_every_seconds`` (or on :meth:`check_once`)."""

    def __init__(self, state: LearningState, registry: Callable[[], PolicyRegistry], config: GuardrailConfig, *,
                 may_act: Callable[[], bool] = lambda: True, on_rollback: Callable[[str], None] = lambda c: None,
                 clock: Callable[[], float] = time.time) -> None:
        for name, runtime in state.campaigns.items():
            if runtime.config.novelty.beta >= 1.0:
                raise InvalidInput(f"campaigns.{name}: the guardrail needs novelty beta < 1 (with beta = 1 the "
                                   "policy's own choices are never served)", field=f"campaigns.{name}.novelty.beta")
        self.state = state
        self.config = config
        self._registry = registry
        self._may_act = may_act
        self._on_rollback = on_rollback
        self._clock = clock
        self._judgements: dict[str, _Judgement] = {}
        self._status: dict[str, GuardrailStatus] = {}
        self._rollbacks: dict[str, GuardrailStatus] = {}
        self._lock = threading.Lock()  # one check at a time (the thread, or a test calling check_once)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="guardrail", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def status(self, campaign: str) -> GuardrailStatus | None:
        """The campaign's current judgement (None: nothing is being judged)."""
        return self._status.get(campaign)

    def last_rollback(self, campaign: str) -> GuardrailStatus | None:
        """The judgement the guardrail last rolled the campaign back on (None: it never did, in this process)."""
        return self._rollbacks.get(campaign)

    def _run(self) -> None:
        while not self._stop.wait(self.config.check_every_seconds):
            self.check_once()

    def check_once(self) -> None:
        """Judge every campaign once; failures are logged and retried at the next check."""
        with self._lock:
            for campaign in self.state.campaigns:
                try:
                    self._check(campaign)
                except Exception:  # noqa: BLE001 - the guardrail must never take the process down
                    log.exception("campaign %s: guardrail check failed", campaign)

    def _check(self, campaign: str) -> None:
        moves = self.state.log.alias_moves(campaign, CHAMPION, OPERATOR_MOVES)
        last = moves[0] if moves else None
        judgement = self._judgements.get(campaign)
        if last is None or last.kind != "promote" or last.from_version is None:
            self._drop(campaign)
            return
        if judgement is None or judgement.key != (last.to_version, last.moved_at):
            self._drop(campaign)
            judgement = self._start(campaign, last)
            if judgement is None:
                return
        if not judgement.rolled_back:
            now = self._clock()
            self._read(campaign, judgement)
            self._settle(campaign, judgement, now)
            if judgement.test.tripped_at is not None and self._may_act():
                self._roll_back(campaign, judgement)
        self._status[campaign] = GuardrailStatus(campaign, judgement.judged, judgement.target,
                                                 judgement.test.verdict(), len(judgement.pending),
                                                 judgement.rolled_back)

    def _drop(self, campaign: str) -> None:
        self._judgements.pop(campaign, None)
        self._status.pop(campaign, None)

    def _start(self, campaign: str, move: AliasMove) -> _Judgement | None:
        registry = self._registry()
        target = registry.rollback_target(campaign)
        if target is None or target == move.to_version:
            return None
        loaded = registry.load(campaign, target)
        runtime = self.state.campaigns[campaign]
        low, high = runtime.config.reward_range
        test = PairedTest(margin=self.config.margin, alpha=self.config.alpha,
                          upper=(high - low) / (1.0 - runtime.config.novelty.beta),
                          min_rewards=self.config.min_rewards)
        judgement = _Judgement(move, target, load_policy(loaded.policy_name, loaded.model), test)
        self._judgements[campaign] = judgement
        log.info("campaign %s: guardrail judges v%s against v%s", campaign, move.to_version, target)
        return judgement

    def _read(self, campaign: str, judgement: _Judgement) -> None:
        """Score the previous champion on the judged lineage's decisions not read yet."""
        runtime = self.state.campaigns[campaign]
        since = max(judgement.since, judgement.cursor - OVERLAP_SECONDS)
        refreshed = False
        for stored in self.state.log.stored_decisions(LogFilter(campaign=campaign, since=since)):
            decision = stored.decision
            if decision.seq in judgement.seen:
                continue
            if decision.policy_version not in judgement.lineage and not refreshed:  # a new checkpoint?
                judgement.lineage = self._registry().lineage_versions(campaign, judgement.judged)
                refreshed = True
            judgement.seen[decision.seq] = decision.decided_at
            judgement.cursor = max(judgement.cursor, decision.decided_at)
            if (decision.policy_version not in judgement.lineage or decision.chosen is None
                    or decision.exploration == HOLDOUT or stored.learn_due_at is None):
                continue
            arm = decision.chosen
            previous = runtime.serving_pmf(judgement.previous, decision.context, decision.arm_set, decision.baseline)
            policy = stored.policy_pmf if len(stored.policy_pmf) else decision.pmf  # rows from before policy_pmf
            judgement.pending[decision.seq] = _Pending(float(stored.learn_due_at), float(policy[arm]),
                                                       float(previous[arm]), float(decision.probability))
        horizon = judgement.cursor - OVERLAP_SECONDS
        judgement.seen = {seq: at for seq, at in judgement.seen.items() if at >= horizon}

    def _settle(self, campaign: str, judgement: _Judgement, now: float) -> None:
        """Add the decisions whose window closed, in the order they closed, to the test."""
        due = sorted((item.settles_at, seq) for seq, item in judgement.pending.items()
                     if item.settles_at <= now - SETTLE_GRACE_SECONDS)
        low = self.state.campaigns[campaign].config.reward_range[0]
        defaults = self.state.reward_defaults
        for start in range(0, len(due), _SETTLE_CHUNK):
            seqs = [seq for _, seq in due[start:start + _SETTLE_CHUNK]]
            rewards = self.state.log.settled_rewards(seqs, defaults, now)
            items = [judgement.pending.pop(seq) for seq in seqs]
            ds = [difference(rewards[seq], low, item.new, item.previous, item.served)
                  for seq, item in zip(seqs, items) if seq in rewards]  # a decision erased meanwhile is left out
            if judgement.test.add_many(ds):  # checked after every one of them
                return

    def _roll_back(self, campaign: str, judgement: _Judgement) -> None:
        verdict = judgement.test.verdict()
        why = (f"guardrail: v{judgement.judged} (and its checkpoints) below v{judgement.target} by more than "
               f"{self.config.margin:g}: IPW difference {verdict.estimate:+.4f}, upper bound "
               f"{verdict.upper_bound:+.4f}, over {verdict.rewards} final rewards; e-value {verdict.e_value:.1f} "
               f">= {verdict.threshold:g} (alpha {self.config.alpha:g})")
        result = self._registry().guardrail_rollback(campaign, judged=judgement.judged, target=judgement.target,
                                                     why=why, metrics=verdict.as_metrics())
        judgement.rolled_back = True
        if result is None:
            log.warning("campaign %s: guardrail tripped on v%s, but an operator moved champion meanwhile; left alone",
                        campaign, judgement.judged)
            return
        log.warning("campaign %s: %s; champion rolled back from v%s to v%s", campaign, why, result.champion_before,
                    result.champion_after)
        self._rollbacks[campaign] = GuardrailStatus(campaign, judgement.judged, judgement.target, verdict,
                                                    len(judgement.pending), True)
        self._on_rollback(campaign)
