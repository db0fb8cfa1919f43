"""Fresh decisions of one call, decided in waves: at most one item per customer in a wave, every wave's items
scored by the policy in one ``pmf_batch`` call.

DESIGN-NOTES ("Per-user state"): items of one DecideBatch for the same customer see each other (the second
sees the first's pending contact) and a customer's lock is held from the snapshot to ``record_contact``. So an
item goes into the wave after the one holding its customer's previous item (almost always one wave); a wave
takes its customers' locks in sorted key order (every holder of several user locks takes them in that order,
so two waves, or a wave and a single Decide, never wait on each other in a cycle), then per item: snapshot,
contact rules, holdout and personal context; one ``pmf_batch`` per serving policy (VW's pmf of an item does not
depend on what else is in the call: the conformance battery checks it); then per item: modes, novelty mixture,
the seeded draw and the pending contact. The locks are released before the answers and rows are built.

Probabilities, pmfs and draws are bit for bit those of deciding the items one by one
(``tests/service/test_batch_waves.py`` compares a batch with the same requests decided singly on a twin engine).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from policies import sampler
from policies.contract import Policy
from policies.history import UserHandle, UserHistory, UserHistoryStore, customer_features
from policies.novelty import Mixture, mix_for_history
from policies.rules import Eligibility, apply_rules
from policies.types import DecisionContext
from service.handoffs import ShadowItem
from service.holdout import HOLDOUT, held_out_arm, in_holdout, one_hot
from service.log_records import PreparedRequest, decision_row, main_reason
from service.outcomes import NO_RANKING, DecisionOutcome, RepeatRecord, ranking_of
from decision_log import DecisionRow

__all__ = ["Decided", "decide_waves", "waves_of"]


@dataclass(frozen=True, slots=True)
class Decided:
    """A fresh decision waiting for its commit: the row to write, the answer and what settles it."""

    outcome: DecisionOutcome
    row: DecisionRow
    record: RepeatRecord
    shadow: ShadowItem | None
    contact: bool  # a pending contact was recorded for it
    index: int  # its position in the call's inputs


@dataclass(slots=True)
class _Item:
    """One item of a wave between its steps (under its customer's lock until `_Drawn`)."""

    index: int
    prepared: PreparedRequest
    user: UserHandle
    history: UserHistory
    eligibility: Eligibility
    version: str
    context: DecisionContext
    policy: Policy
    held: bool = False  # the control group: served without the policy
    served: int | None = None
    learned: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class _Drawn:
    item: _Item
    pmf: np.ndarray
    p_policy: np.ndarray
    mixture: Mixture | None
    beta: float
    chosen: int
    probability: float
    label: str


def waves_of(items: Sequence[PreparedRequest]) -> list[list[int]]:
    """Positions of ``items`` in waves: an item joins the wave after its customer's previous item's."""
    waves: list[list[int]] = []
    seen: dict[str, int] = {}
    for position, item in enumerate(items):
        wave = seen.get(item.context.user_key, -1) + 1
        seen[item.context.user_key] = wave
        if wave == len(waves):
            waves.append([])
        waves[wave].append(position)
    return waves


def decide_waves(history: UserHistoryStore, seed_key: bytes, items: Sequence[tuple[int, PreparedRequest]],
                 now: float, decided: list[Decided]) -> None:
    """Decide ``items`` (input index, request) wave by wave, appending to ``decided`` as each wave completes
    (so a caller that catches an error can drop the pending contacts of everything appended)."""
    for wave in waves_of([item for _, item in items]):
        _decide_wave(history, seed_key, [items[p] for p in wave], now, decided)


def _decide_wave(history: UserHistoryStore, seed_key: bytes, items: Sequence[tuple[int, PreparedRequest]],
                 now: float, decided: list[Decided]) -> None:
    recorded: list[tuple[str, str]] = []  # (user key, event id) of the pending contacts recorded in this wave
    try:
        with ExitStack() as locks:
            users = {key: locks.enter_context(history.locked(key))
                     for key in sorted({item.context.user_key for _, item in items})}
            staged = [_stage(index, item, users[item.context.user_key], now, seed_key) for index, item in items]
            _score([s for s in staged if isinstance(s, _Item) and not s.held])
            drawn = [s if isinstance(s, Decided) else _draw(s, seed_key) for s in staged]
            for done in drawn:
                if isinstance(done, _Drawn):
                    _record(done)
                    recorded.append((done.item.context.user_key, done.item.prepared.event_id))
        decided.extend(d if isinstance(d, Decided) else _finish(d) for d in drawn)
    except BaseException:
        for user_key, event_id in recorded:
            history.discard(user_key, event_id)
        raise


def _stage(index: int, item: PreparedRequest, user: UserHandle, now: float, seed_key: bytes) -> _Item | Decided:
    """Steps 1-2 of a decision and what the policy needs: a `Decided` no_contact, or an item to score."""
    runtime, context, inp = item.campaign, item.context, item.input
    cfg = runtime.config
    history = user.snapshot(now)
    eligibility = apply_rules(item.candidates, context, history, now, runtime.rules,
                              excluded_offers=inp.excluded_offers, consented_formats=inp.consented_formats)
    policy, version = runtime.live.current()
    # under the oldest listed key's hash, like the draw's seed: a key rotation moves nobody in or out
    held = in_holdout(seed_key, cfg.name, (context.user_key, *item.previous_user_keys)[-1], cfg.holdout)
    served = held_out_arm(eligibility.arm_set, cfg.holdout_treatment, inp.baseline) if held else None
    if eligibility.is_empty or (held and served is None):
        reason = main_reason(eligibility.removed) if eligibility.is_empty else HOLDOUT
        outcome = DecisionOutcome(item.event_id, cfg.name, None, 1.0, NO_RANKING, version,
                                  HOLDOUT if held else sampler.NO_CONTACT, reason)
        row = decision_row(item, now, eligibility, np.zeros(0), np.zeros(0), None, outcome, 0.0)
        record = RepeatRecord.of(outcome, item.fingerprint, item.candidates, eligibility.kept, np.zeros(0), None)
        return Decided(outcome, row, record, None, contact=False, index=index)
    if cfg.personal_features and not held:  # as of now, from rewards received before it; logged as used
        customer = customer_features(history)
        if customer is not None:
            context = dataclasses.replace(context, customer=customer)
    return _Item(index, item, user, history, eligibility, version, context, policy, held, served)


def _score(items: Sequence[_Item]) -> None:
    """The learned pmf of every item: one ``pmf_batch`` call per serving policy (in the items' order)."""
    by_policy: dict[int, list[_Item]] = {}
    for item in items:
        by_policy.setdefault(id(item.policy), []).append(item)
    for group in by_policy.values():
        pmfs = group[0].policy.pmf_batch([(item.context, item.eligibility.arm_set) for item in group])
        for item, pmf in zip(group, pmfs):
            item.learned = pmf


def _draw(item: _Item, seed_key: bytes) -> _Drawn:
    """Steps 3-6: the served policy pmf, the novelty mixture, the two-stage draw and its label."""
    runtime, arm_set = item.prepared.campaign, item.eligibility.arm_set
    if item.held:  # the control group: what was served, with probability 1, never personalised
        p_policy = one_hot(len(arm_set), item.served)
        return _Drawn(item, p_policy, p_policy, None, 0.0, item.served, 1.0, HOLDOUT)
    p_policy = runtime.shaped_pmf(item.learned, arm_set, item.prepared.input.baseline)
    mixture = mix_for_history(p_policy, arm_set, item.history, runtime.novelty)
    draw = sampler.two_stage_draw(mixture, sampler.event_seed(seed_key, runtime.config.name, item.prepared.event_id))
    return _Drawn(item, mixture.p, p_policy, mixture, mixture.beta, draw.index, draw.probability,
                  sampler.exploration_label(draw, p_policy))


def _record(drawn: _Drawn) -> None:
    """Step 7's first half: the pending contact (its customer's lock is held)."""
    item = drawn.item
    arm_set = item.eligibility.arm_set
    arm = arm_set.arms[drawn.chosen]
    item.user.record_contact(event_id=item.prepared.event_id, when=item.history.as_of, arm=arm,
                             category=arm_set.offer_of(arm).category, counts=not item.prepared.input.deferred,
                             committed=False)


def _finish(drawn: _Drawn) -> Decided:
    """The answer, the log row and the repeat record of a drawn decision (no lock held)."""
    item, chosen, pmf = drawn.item, drawn.chosen, drawn.pmf
    prepared, eligibility = item.prepared, item.eligibility
    runtime, arm_set = prepared.campaign, eligibility.arm_set
    arm = arm_set.arms[chosen]
    outcome = DecisionOutcome(prepared.event_id, runtime.config.name, arm, drawn.probability,
                              ranking_of(prepared.candidates, pmf, prepared.input.ranking_limit, eligibility.kept,
                                         chosen=chosen, probability=drawn.probability), item.version, drawn.label)
    row = decision_row(prepared, item.history.as_of, eligibility, pmf, drawn.p_policy, chosen, outcome, drawn.beta,
                       drawn.mixture, arm_set, customer=item.context.customer)
    record = RepeatRecord.of(outcome, prepared.fingerprint, prepared.candidates, eligibility.kept, pmf, chosen)
    shadow = None
    if runtime.challenger is not None and not item.held:
        shadow = ShadowItem(prepared.event_id, runtime.config.name, item.context, arm_set, chosen)
    return Decided(outcome, row, record, shadow, contact=True, index=item.index)
