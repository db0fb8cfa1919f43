"""Off-policy evaluation on a compact log (float32 pmf, chosen probability exact) against the same decisions
logged in float64 (the old format), on both backends: IPW, SNIPW, DM and DR agree within a derived bound.

The bound. A stored entry is p~ = p (1 + d) with |d| <= u = 2^-24 (round to nearest; the pmfs here stay in
float32's normal range), and d = 0 for the chosen arm (its probability is stored exactly). The target is the
logged pmf sharpened, pi_a = p_a^2 / sum_b p_b^2, so pi~_a / pi_a lies in [((1-u)/(1+u))^2, ((1+u)/(1-u))^2]:
|pi~_a - pi_a| <= eps pi_a with eps = ((1+u)/(1-u))^2 - 1 (about 4u). The importance weight w = pi(a)/p(a)
(p(a) exact) moves by at most eps w, so with rewards and q_hat >= 0:
  |d IPW|   <= eps E|w r|
  |d SNIPW| <= SNIPW * 2 eps / (1 - eps)           (numerator and denominator each within eps)
  |d DM|    <= eps DM                               (DM = E sum_a pi_a q_a)
  |d DR|    <= eps (DM + E|w (r - q(a))|)
plus 1e-12 for the summation order of the estimators' own arithmetic.
"""
from __future__ import annotations

import numpy as np

from decision_log import (DecisionRow, LogFilter, RewardDefaults, arm_set_code, eligible_to_mask, encode_offers,
                          indices_to_blob, open_log, pmf32_to_blob, pmf_to_blob)
from offline_eval import evaluate
from offline_eval.log_dataset import load_dataset
from offline_eval.ragged import RaggedMatrix
from policies.types import ArmSet, Offer

U = 2.0 ** -24
EPS = ((1 + U) / (1 - U)) ** 2 - 1
OFFERS = tuple(Offer(f"o{i}", {"category": f"c{i % 4}"}) for i in range(16))
FORMATS, SLOTS = ("sms", "email"), ("morning", "evening")
PRODUCT = ArmSet.product(OFFERS, FORMATS, SLOTS)  # 64 candidates
N = 300


def _decisions(seed: int = 15):
    """N decisions: eligible subsets of the 64 candidates (every 5th all of them), skewed pmfs, draws, rewards."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(N):
        eligible = np.arange(64) if i % 5 == 0 else np.sort(rng.choice(64, size=int(rng.integers(2, 64)),
                                                                        replace=False))
        pmf = np.maximum(rng.dirichlet(np.full(len(eligible), 0.3)), 1e-9)
        pmf /= pmf.sum()
        chosen = int(rng.choice(len(eligible), p=pmf))
        out.append((eligible, pmf, chosen, float(rng.random() < 0.2 + 0.6 * pmf[chosen])))
    return out


def _row(event_id: str, campaign: str, eligible, pmf, chosen: int, compact: bool) -> DecisionRow:
    offer_set_id, offer_set_json = encode_offers(OFFERS)
    arm = PRODUCT.arms[int(eligible[chosen])]
    fields = dict(
        event_id=event_id, campaign=campaign, decided_at=1000.0 + int(event_id.split("-")[1]), user_key="u" * 32,
        context_json='{"segment":"a"}', numeric_json="{}", offer_set_id=offer_set_id, offer_set_json=offer_set_json,
        chosen_index=chosen, offer_id=arm.offer_id, format=arm.format, time_slot=arm.time_slot,
        probability=float(pmf[chosen]), policy_version="bootstrap", exploration="explore", beta=0.0,
        deferred=False, learn_due_at=5000.0, baseline_json=None, no_contact_reason="")
    if compact:
        arm_set_id, arm_set_text = arm_set_code(offer_set_id, FORMATS, SLOTS)
        return DecisionRow(**fields, arm_set_id=arm_set_id, arm_set_text=arm_set_text,
                           eligible=eligible_to_mask(eligible, 64), pmf=pmf32_to_blob(pmf), policy_pmf=None,
                           removed=f"{64 - len(eligible)},0,0,0,0")
    return DecisionRow(**fields, formats_json='["sms","email"]', time_slots_json='["morning","evening"]',
                       eligible=indices_to_blob(eligible), pmf=pmf_to_blob(pmf), policy_pmf=pmf_to_blob(pmf),
                       removed=f'{{"exclusion": {64 - len(eligible)}}}')


def _estimates(dataset, q_values: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """The four estimates of the sharpened logged pmf, and their bounds for a float32 log."""
    lp = dataset.logging_pmf
    squared = lp.values ** 2
    sums = np.add.reduceat(squared, lp.indptr[:-1])
    target = RaggedMatrix(lp.indptr, squared / np.repeat(sums, np.diff(lp.indptr)))
    q_hat = RaggedMatrix(lp.indptr, q_values)
    result = evaluate(dataset.feedback, target, q_hat, estimators=["ipw", "snipw", "dm", "dr"], n_bootstrap=0)
    values = {name: result[name].value for name in ("ipw", "snipw", "dm", "dr")}
    fb = dataset.feedback
    rows = np.arange(fb.n_events)
    at = lp.indptr[:-1] + fb.action
    w = target.values[at] / fb.pscore
    dm = values["dm"]
    bounds = {"ipw": EPS * np.mean(np.abs(w * fb.reward)), "snipw": values["snipw"] * 2 * EPS / (1 - EPS),
              "dm": EPS * dm, "dr": EPS * (dm + np.mean(np.abs(w * (fb.reward - q_hat.values[at]))))}
    assert len(rows) == N
    return values, {k: v + 1e-12 for k, v in bounds.items()}


def test_ope_on_the_compact_log_agrees_with_float64_within_the_derived_bound(log_where):
    decisions = _decisions()
    with open_log(log_where, writable=True) as log:
        for campaign, compact in (("compact", True), ("float64", False)):
            log.insert_decisions([_row(f"{campaign}-{i}", campaign, e, p, c, compact)
                                  for i, (e, p, c, _) in enumerate(decisions)]).result(30)
            rewards = [log.record_reward(f"{campaign}-{i}", r, "r", 1001.0 + i, lambda c: "first")
                       for i, (*_, r) in enumerate(decisions)]
            [f.result(30) for f in rewards]
        log.claim_due(log.due_for_learning(6000.0, limit=10 * N), 6000.0, RewardDefaults()).result(30)
        assert log.count() == 2 * N
        compact_rows = log.backend.feedback_rows(LogFilter(campaign="compact"))
        assert all(row["arm_set_id"] for row in compact_rows)
    url = log_where if isinstance(log_where, str) else str(log_where)
    compact, wide = load_dataset(url, campaign="compact"), load_dataset(url, campaign="float64")
    for name in ("action", "pscore", "reward"):  # what IPW divides by is stored exactly in both
        np.testing.assert_array_equal(getattr(compact.feedback, name), getattr(wide.feedback, name))
    np.testing.assert_array_equal(compact.indptr, wide.indptr)
    stored_error = np.abs(compact.logging_pmf.values - wide.logging_pmf.values) / wide.logging_pmf.values
    assert 0 < stored_error.max() <= U  # float32 entries, and within the unit roundoff
    q_values = np.random.default_rng(7).random(len(wide.logging_pmf.values))
    got, bounds = _estimates(compact, q_values)
    exact, _ = _estimates(wide, q_values)
    for name in got:
        assert -bounds[name] <= got[name] - exact[name] <= bounds[name], (name, got[name] - exact[name], bounds[name])
        assert bounds[name] < 1e-6  # the bound is tight: float32 costs OPE nothing at the third decimal
    assert any(got[name] != exact[name] for name in got)  # the compact campaign really was float32
