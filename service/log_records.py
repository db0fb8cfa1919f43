"""What the engine hands to the log with a decision, and the answers it builds from what the log stored.

- :func:`log_options`: the writer's options from ``[log]``;
- :func:`decision_row`: the compact row of a decision, as the writer stores it;
- :func:`caps_on`: the campaign's caps on the chosen arm's format, carried in ``DecisionRow.caps`` so the log
  checks them again inside the commit, against every writer's committed contacts (exact across replicas);
- :func:`record_of`: the repeat record of a decision read back from the log (a repeat after a restart, or
  an event id another replica committed first);
- :func:`capped_record`: what the log wrote instead of a decision whose cap was reached by the commit;
- :func:`main_reason`: the reason a ``no_contact`` decision is logged with;
- :func:`write_failure`: why a decision's write resolved without a commit (None: it committed).
"""
from __future__ import annotations

import json
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np

from decision_log import (CapLimit, DecisionRow, LoggedDecision, LogOptions, arm_set_code, arm_set_key, as_stored,
                          eligible_to_mask, pmf32_to_blob, policy_pmf_blob, removed_text, values_text)
from policies import sampler
from policies.novelty import Mixture, category_codes
from policies.rules import RULE_NAMES, Eligibility, RemovalCounts
from policies.types import ArmSet, CustomerFeatures, DecisionContext, JointArm, Offer
from service.campaigns import CampaignRuntime
from service.config import ServiceConfig
from service.outcomes import NO_RANKING, DecisionOutcome, RepeatRecord
from service.validation import DecideInput

__all__ = ["PreparedRequest", "capped_record", "caps_on", "decision_row", "log_options", "main_reason", "record_of",
           "write_failure"]


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """One request the engine resolved against its campaign, before any state is touched (what
    `decision_row` writes from)."""

    input: DecideInput
    event_id: str
    campaign: CampaignRuntime
    context: DecisionContext
    candidates: ArmSet
    offer_list: tuple[Offer, ...]
    formats: tuple[str, ...]
    time_slots: tuple[str, ...]
    fingerprint: str
    previous_user_keys: tuple[str, ...] = ()  # the customer under older listed user-hash keys (rotation)


def record_of(logged: LoggedDecision) -> RepeatRecord:
    """The repeat record of a decision read back from the log (its fingerprint as stored)."""
    outcome = DecisionOutcome(logged.event_id, logged.campaign, logged.chosen_arm, logged.probability, NO_RANKING,
                              logged.policy_version, logged.exploration, logged.no_contact_reason)
    return RepeatRecord.of(outcome, logged.fingerprint, logged.arm_set, np.arange(len(logged.arm_set.arms)),
                           logged.pmf, logged.chosen)


def log_options(config: ServiceConfig) -> LogOptions:
    """The log writer's options from the ``[log]`` section."""
    log = config.log
    return LogOptions(synchronous=log.synchronous, max_group=log.max_group, max_queue=log.max_queue,
                      busy_timeout_ms=log.busy_timeout_ms, wal_autocheckpoint_pages=log.wal_autocheckpoint_pages,
                      wal_checkpoint_seconds=log.wal_checkpoint_seconds,
                      connect_timeout_s=log.connect_timeout_seconds)


def caps_on(campaign: CampaignRuntime, arm: JointArm | None) -> tuple[CapLimit, ...]:
    """The campaign's caps that count a contact through ``arm``'s format (none for a no_contact): the log
    checks them again at commit, against every writer's committed contacts."""
    if arm is None:
        return ()
    return tuple(CapLimit(cap.format, float(cap.window_s), int(cap.max_contacts)) for cap in campaign.rules.caps
                 if cap.format in ("*", arm.format))


def capped_record(decided: RepeatRecord) -> RepeatRecord:
    """What the log wrote instead of a decision over a cap: a ``no_contact`` (reason ``cap``), no arms."""
    outcome = DecisionOutcome(decided.event_id, decided.campaign, None, 1.0, NO_RANKING, decided.policy_version,
                              sampler.NO_CONTACT, "cap")
    return RepeatRecord.of(outcome, decided.fingerprint, decided.arms, np.zeros(0, dtype=np.uint32), np.zeros(0), None)


def main_reason(removed: RemovalCounts) -> str:
    """The removal rule that took the most arms, by its RemovedArm name (``excluded``, ``consent``, ``cap``,
    ``quiet_hours``, ``suppression``; the first of them on a tie), ``no_candidates`` when none was removed."""
    counts = [int(getattr(removed, name)) for name in removed.__dataclass_fields__]
    if not any(counts):
        return "no_candidates"
    return RULE_NAMES[counts.index(max(counts))]


def write_failure(write: Future) -> BaseException | None:
    """Why ``write`` resolved without a commit (cancelled, failed), or None when it committed."""
    if write.cancelled():
        return FutureTimeout("the deadline passed before the decision was written; nothing was logged")
    try:
        return write.exception()
    except CancelledError as exc:  # cancelled between the two calls
        return exc


def decision_row(item: PreparedRequest, now: float, eligibility: Eligibility, pmf: np.ndarray, p_policy: np.ndarray,
                 chosen: int | None, outcome: DecisionOutcome, beta: float,
                 mixture: Mixture | None = None, arm_set: ArmSet | None = None,
                 customer: CustomerFeatures | None = None) -> DecisionRow:
    """The compact log row of one decision: ``eligibility`` what the rules kept of the candidates (and which
    rule removed the rest, per offer and per (format, slot) pair: candidates are the product of the offer list,
    formats and slots, in that order, so `arm_index`'s order is the stored layout's), ``pmf`` the served pmf
    over the kept arms and ``p_policy`` the policy's (kept as ``mixture``'s parameters when they give it back),
    ``chosen`` the drawn position (None: no contact), ``customer`` the per-customer features the policy used."""
    inp = item.input
    kept, removed = eligibility.kept, eligibility.removed
    policy_blob = policy_pmf_blob(
        p_policy, pmf, mixture, as_stored(pmf, chosen, outcome.probability) if mixture is not None else None,
        category_codes(arm_set) if mixture is not None and mixture.grouped else None)
    offer_set_id, offer_set_json = item.campaign.offer_set_code(item.offer_list,
                                                                inp.offers_key if inp.offers else b"")
    context_keys, numeric_keys = tuple(k for k, _ in inp.context), tuple(k for k, _ in inp.numeric)
    arm_set_id, arm_set_text = arm_set_code(offer_set_id, item.formats, item.time_slots, context_keys, numeric_keys)
    learn_due = None
    if chosen is not None and not inp.deferred:
        learn_due = now + item.campaign.config.reward_window(outcome.arm.format)
    arm = outcome.arm
    return DecisionRow(
        event_id=item.event_id, campaign=item.campaign.config.name, decided_at=now,
        user_key=item.context.user_key, context_json=values_text([v for _, v in inp.context]),
        numeric_json=values_text([v for _, v in inp.numeric]), offer_set_id=offer_set_id,
        offer_set_json=offer_set_json, arm_set_id=arm_set_id, arm_set_text=arm_set_text,
        arm_set_key=arm_set_key(arm_set_id),
        eligible=eligible_to_mask(kept, len(item.candidates.arms)), pmf=pmf32_to_blob(pmf),
        policy_pmf=policy_blob, chosen_index=chosen, offer_id=arm.offer_id if arm else "",
        format=arm.format if arm else "", time_slot=arm.time_slot if arm else "",
        probability=outcome.probability, policy_version=outcome.policy_version,
        exploration=outcome.exploration, beta=float(beta), deferred=inp.deferred, learn_due_at=learn_due,
        baseline_json=json.dumps([inp.baseline.offer_id, inp.baseline.format, inp.baseline.time_slot])
        if inp.baseline else None,
        no_contact_reason=outcome.no_contact_reason,
        removed=removed_text(removed, eligibility.offer_reasons, eligibility.pair_reasons),
        fingerprint=item.fingerprint, caps=caps_on(item.campaign, arm), previous_user_keys=item.previous_user_keys,
        features_json=customer.to_json() if customer is not None else None)
