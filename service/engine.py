"""The decision engine: one decision, in the order the design notes fix.

1. resolve campaign, candidates and joint arms (validated input in);
2. contact rules remove ineligible arms (empty: a logged ``no_contact`` decision);
3. the serving policy scores the eligible arms -> ``p_policy`` (never recomputed);
4. the novelty mixture ``p = (1 - β)·p_policy + β·q_novel``;
5. the two-stage seeded draw; its probability is ``p(arm)``;
6. the exploration label;
7. per-user state updated under the user's lock, the row handed to the log writer; the answer
   returns only after the writer's group commit.

The engine never opens a transaction and never touches MLflow.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from policies import sampler
from offerbandit.errors import InvalidInput, NotFound
from policies.history import HistoryConfig, UserHistoryStore
from policies.novelty import mix_for_history
from policies.rules import apply_rules
from policies.types import ArmSet, DecisionContext, JointArm, Offer
from decision_log import (ActivationOutcome, DecisionRow, LoggedDecision, LogOptions, RewardOutcome, indices_to_blob,
                          open_log, pmf_to_blob)
from service.campaigns import CampaignRuntime, build_runtimes
from service.config import CampaignConfig, ServiceConfig
from service.keys import ServerKeys, load_keys
from service.validation import DecideInput, RewardInput


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    event_id: str
    campaign: str
    arm: JointArm | None
    probability: float
    ranking: tuple[tuple[JointArm, float], ...]
    policy_version: str
    exploration: str
    no_contact_reason: str = ""


@dataclass(frozen=True, slots=True)
class ShadowItem:
    """A committed decision for the challenger to score off the request path."""

    event_id: str
    campaign: str
    context: DecisionContext
    arm_set: ArmSet
    chosen: int


class LearnableSink(Protocol):
    """Where the engine hands the log sequence numbers of events a reward made learnable."""

    def enqueue(self, seqs: Sequence[int]) -> None: ...


class ShadowSink(Protocol):
    """Where the engine hands committed decisions for the challenger to score; must not block."""

    def offer(self, items: list[ShadowItem]) -> None: ...


class _Discard:
    """The sink of an engine running without a learner or shadow scorer (benchmarks)."""

    def enqueue(self, seqs: Sequence[int]) -> None:
        pass

    def offer(self, items: list[ShadowItem]) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One request resolved against its campaign, before any state is touched."""

    input: DecideInput
    event_id: str
    campaign: CampaignRuntime
    context: DecisionContext
    candidates: ArmSet
    offer_list: tuple[Offer, ...]
    formats: tuple[str, ...]
    time_slots: tuple[str, ...]


def ranking_of(arm_set: ArmSet, pmf: np.ndarray, limit: int = 0) -> tuple[tuple[JointArm, float], ...]:
    """Arms with non-zero probability, highest first (ties in arm order); the top ``limit`` if set."""
    order = np.argsort(-pmf, kind="stable")
    order = order[pmf[order] > 0]
    if limit:
        order = order[:limit]
    arms = arm_set.arms
    return tuple(zip(map(arms.__getitem__, order.tolist()), pmf[order].tolist()))


class DecisionEngine:
    """Decide, reward, activate. Thread-safe; owns the decision log and the per-user store.

    Learnable events go to ``learnable`` right after their reward's commit, committed decisions with a
    challenger to ``shadow``; without them (a bare engine) both are discarded.
    """

    def __init__(self, config: ServiceConfig, data_dir: Path, *, keys: ServerKeys | None = None,
                 on_queue_depth: Callable[[int], None] | None = None,
                 learnable: LearnableSink | None = None, shadow: ShadowSink | None = None) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.keys = keys or load_keys(self.data_dir, config.privacy.user_hash_key)
        self.log = open_log(self.data_dir, writable=True, on_queue_depth=on_queue_depth, options=LogOptions(
            synchronous=config.log.synchronous, max_group=config.log.max_group, max_queue=config.log.max_queue,
            busy_timeout_ms=config.log.busy_timeout_ms, wal_autocheckpoint_pages=config.log.wal_autocheckpoint_pages))
        self.reward_defaults = config.reward_defaults()
        horizon = max(config.learning.history_horizon_seconds,
                      *(c.rules.longest_cap_window_s for c in config.campaigns.values()))
        self.history = UserHistoryStore(HistoryConfig(max_users=config.learning.history_max_users,
                                                      horizon_s=horizon))
        self.campaigns: dict[str, CampaignRuntime] = build_runtimes(config)
        self._recent: OrderedDict[str, DecisionOutcome] = OrderedDict()
        self._inflight: dict[str, Future] = {}
        self._ids_lock = threading.Lock()
        self._recent_size = 100_000
        self._learnable: LearnableSink = learnable or _Discard()
        self._shadow: ShadowSink = shadow or _Discard()
        self._rebuild_history()

    # --- start-up -----------------------------------------------------------------------------

    def _rebuild_history(self) -> None:
        since = time.time() - self.history.config.horizon_s
        self.history.rebuild(self.log.history_since(since))

    def runtime(self, campaign: str) -> CampaignRuntime:
        try:
            return self.campaigns[campaign or "default"]
        except KeyError:
            raise NotFound(f"unknown campaign {campaign!r} (configured: {', '.join(sorted(self.campaigns))})") from None

    # --- Decide -------------------------------------------------------------------------------

    def decide(self, inputs: Sequence[DecideInput], timeout: float | None = None) -> list[DecisionOutcome]:
        """Decide every input; all of them are logged in one transaction, or none."""
        prepared = [self._prepare(i, inp) for i, inp in enumerate(inputs)]
        results: list[DecisionOutcome | None] = [None] * len(prepared)
        waiting: list[tuple[int, Future]] = []
        claimed: set[str] = set()
        fresh: list[int] = []
        try:
            with self._ids_lock:
                for i, item in enumerate(prepared):
                    known = self._recent.get(item.event_id)
                    if known is not None:
                        results[i] = known
                    elif item.event_id in self._inflight:
                        waiting.append((i, self._inflight[item.event_id]))
                    else:
                        self._inflight[item.event_id] = Future()
                        claimed.add(item.event_id)
                        fresh.append(i)
            for i in [i for i in fresh if prepared[i].input.event_id]:  # server-made ids are new by construction
                logged = self.log.find_decision(prepared[i].event_id)
                if logged is not None:
                    results[i] = _outcome_of(logged)
            fresh = [i for i in fresh if results[i] is None]
            rows: list[DecisionRow] = []
            scored: list[ShadowItem] = []
            now = time.time()
            for i in fresh:
                outcome, row, shadow = self._decide_one(prepared[i], now)
                results[i] = outcome
                rows.append(row)
                if shadow is not None:
                    scored.append(shadow)
            if rows:
                self.log.insert_decisions(rows).result(timeout)
                if scored:
                    self._shadow.offer(scored)
            for i, future in waiting:
                results[i] = future.result(timeout)
        except BaseException as exc:
            with self._ids_lock:
                for event_id in claimed:
                    future = self._inflight.pop(event_id)
                    future.set_exception(exc)
            raise
        with self._ids_lock:
            for i, item in enumerate(prepared):
                if item.event_id in claimed and item.event_id in self._inflight:
                    self._inflight.pop(item.event_id).set_result(results[i])
                    self._remember(item.event_id, results[i])
        return [r for r in results if r is not None]

    def _remember(self, event_id: str, outcome: DecisionOutcome | None) -> None:
        if outcome is None:
            return
        self._recent[event_id] = outcome
        while len(self._recent) > self._recent_size:
            self._recent.popitem(last=False)

    def _prepare(self, index: int, inp: DecideInput) -> _Prepared:
        runtime = self.runtime(inp.campaign)
        catalog = runtime.config.catalog
        offer_list = inp.offers or catalog.offers
        formats = inp.formats or catalog.formats
        time_slots = inp.time_slots or catalog.time_slots
        n_arms = len(offer_list) * len(formats) * len(time_slots)
        if n_arms > self.config.limits.max_joint_arms:
            raise InvalidInput(f"offers x formats x time_slots gives {n_arms} joint arms, more than the limit of "
                               f"{self.config.limits.max_joint_arms}", field="offers")
        candidates = (runtime.catalog_arms if not (inp.offers or inp.formats or inp.time_slots)
                      else runtime.candidates(tuple(offer_list), tuple(formats), tuple(time_slots)))
        context = DecisionContext(user_key=self.keys.user_key(inp.user_id), context=dict(inp.context),
                                  numeric=dict(inp.numeric), campaign=runtime.config.name)
        return _Prepared(inp, inp.event_id or uuid.uuid4().hex, runtime, context, candidates, tuple(offer_list),
                         tuple(formats), tuple(time_slots))

    def _decide_one(self, item: _Prepared, now: float) -> tuple[DecisionOutcome, DecisionRow, ShadowItem | None]:
        runtime, context, inp = item.campaign, item.context, item.input
        cfg: CampaignConfig = runtime.config
        with self.history.locked(context.user_key) as user:
            history = user.snapshot(now)
            eligibility = apply_rules(item.candidates, context, history, now, runtime.rules,
                                      excluded_offers=inp.excluded_offers, consented_formats=inp.consented_formats)
            policy, version = runtime.live.current()
            if eligibility.is_empty:
                reason = _main_reason(eligibility.removed)
                outcome = DecisionOutcome(item.event_id, cfg.name, None, 1.0, (), version, sampler.NO_CONTACT,
                                          reason)
                row = self._row(item, now, eligibility.kept, np.zeros(0), np.zeros(0), None, outcome, 0.0,
                                eligibility.removed)
                return outcome, row, None
            arm_set = eligibility.arm_set
            p_policy = runtime.serving_pmf(policy, context, arm_set, inp.baseline)
            mixture = mix_for_history(p_policy, arm_set, history, runtime.novelty)
            draw = sampler.two_stage_draw(mixture, sampler.event_seed(self.keys.seed_key, cfg.name, item.event_id))
            label = sampler.exploration_label(draw, p_policy)
            arm = arm_set.arms[draw.index]
            user.record_contact(event_id=item.event_id, when=now, arm=arm, category=arm_set.offer_of(arm).category,
                                counts=not inp.deferred)
        outcome = DecisionOutcome(item.event_id, cfg.name, arm, draw.probability,
                                  ranking_of(arm_set, mixture.p, inp.ranking_limit), version, label)
        row = self._row(item, now, eligibility.kept, mixture.p, p_policy, draw.index, outcome, mixture.beta,
                        eligibility.removed)
        shadow = None
        if runtime.challenger is not None:
            shadow = ShadowItem(item.event_id, cfg.name, context, arm_set, draw.index)
        return outcome, row, shadow

    def _row(self, item: _Prepared, now: float, kept: np.ndarray, pmf: np.ndarray, p_policy: np.ndarray,
             chosen: int | None, outcome: DecisionOutcome, beta: float, removed: object) -> DecisionRow:
        inp = item.input
        offer_set_id, offer_set_json = item.campaign.offer_set_code(item.offer_list)
        learn_due = None
        if chosen is not None and not inp.deferred:
            learn_due = now + item.campaign.config.reward_window(outcome.arm.format)
        arm = outcome.arm
        return DecisionRow(
            event_id=item.event_id, campaign=item.campaign.config.name, decided_at=now,
            user_key=item.context.user_key, context_json=json.dumps(dict(inp.context), separators=(",", ":")),
            numeric_json=json.dumps(dict(inp.numeric), separators=(",", ":")), offer_set_id=offer_set_id,
            offer_set_json=offer_set_json, formats_json=json.dumps(item.formats),
            time_slots_json=json.dumps(item.time_slots), eligible=indices_to_blob(kept), pmf=pmf_to_blob(pmf),
            policy_pmf=pmf_to_blob(p_policy), chosen_index=chosen, offer_id=arm.offer_id if arm else "",
            format=arm.format if arm else "", time_slot=arm.time_slot if arm else "",
            probability=outcome.probability, policy_version=outcome.policy_version,
            exploration=outcome.exploration, beta=float(beta), deferred=inp.deferred, learn_due_at=learn_due,
            baseline_json=json.dumps([inp.baseline.offer_id, inp.baseline.format, inp.baseline.time_slot])
            if inp.baseline else None,
            no_contact_reason=outcome.no_contact_reason,
            removed_json=json.dumps({k: getattr(removed, k) for k in removed.__dataclass_fields__}))

    # --- Reward / Activate --------------------------------------------------------------------

    def _aggregation_of(self, campaign: str) -> str:
        runtime = self.campaigns.get(campaign)
        return runtime.config.aggregation if runtime else "first"

    def _window_of(self, campaign: str, fmt: str | None) -> float:
        runtime = self.campaigns.get(campaign)
        return runtime.config.reward_window(fmt or "") if runtime else 86400.0

    def default_reward_of(self, campaign: str) -> float:
        return self.reward_defaults.of(campaign)

    def reward(self, inp: RewardInput, timeout: float | None = None) -> RewardOutcome:
        now = time.time()
        outcome = self.log.record_reward(inp.event_id, inp.value, inp.reward_id, now,
                                         self._aggregation_of, self.reward_defaults.range_of).result(timeout)
        if outcome.accepted and outcome.offer_id is not None and inp.value > 0:
            arm = JointArm(outcome.offer_id, outcome.format, outcome.time_slot)
            runtime = self.campaigns.get(outcome.campaign)
            category = runtime.category_of(outcome.offer_id) if runtime else ""
            self.history.record_response(outcome.user_key, event_id=inp.event_id, when=now, arm=arm,
                                         category=category, reward=inp.value)
        if outcome.learn_seq is not None:
            self._learnable.enqueue([outcome.learn_seq])
        return outcome

    def activate(self, event_id: str, timeout: float | None = None) -> ActivationOutcome:
        now = time.time()
        outcome = self.log.activate(event_id, now, self._window_of, self._aggregation_of).result(timeout)
        if outcome.activated and outcome.offer_id is not None:
            self.history.activate(outcome.user_key, event_id, now)
        if outcome.learn_seq is not None:
            self._learnable.enqueue([outcome.learn_seq])
        return outcome

    def close(self) -> None:
        self.log.close()


def _outcome_of(logged: LoggedDecision) -> DecisionOutcome:
    """The answer to a repeated event id, rebuilt from what was logged."""
    return DecisionOutcome(logged.event_id, logged.campaign, logged.chosen_arm, logged.probability,
                           ranking_of(logged.arm_set, logged.pmf), logged.policy_version, logged.exploration,
                           logged.no_contact_reason)


def _main_reason(removed: object) -> str:
    counts = {k: getattr(removed, k) for k in removed.__dataclass_fields__}
    if not any(counts.values()):
        return "no_candidates"
    return max(counts, key=lambda k: counts[k])
