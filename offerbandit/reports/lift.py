"""Incremental lift of the served policy over the campaign's holdout: the randomised proof of what it adds.

``lift`` = mean reward per decision of the *treated* (every decision that is not ``holdout``, ``no_contact``
included) minus the holdout's, each over the decisions whose reward is settled
(`decision_log.counting.lift_reward`: a closed window without a reward counts the default reward, an open
one is left out).

The 95% interval resamples customers, not decisions: one customer's decisions are not independent (one
inbox, one set of habits), and a customer is in exactly one group (the holdout assignment is per
customer). A group's mean is a ratio over its customers, m = Σ s_i / Σ c_i (s_i, c_i: the customer's reward
sum and decision count); its variance is the cluster-robust (delta-method) one,
``var(m) = n / (n - 1) · Σ (s_i - m·c_i)² / (Σ c_i)²`` over the group's n customers; the groups are
independent, so ``var(lift)`` is the sum, and the interval is ``lift ± 1.96·sqrt(var)``. With fewer than two
customers in a group there is no interval (None), with no holdout decision no lift.
"""
from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from decision_log import LiftOutcome, RewardDefaults, open_log
from offerbandit.errors import InvalidInput

__all__ = ["Z_95", "GroupMean", "LiftReport", "group_mean", "lift_json", "lift_of", "lift_reports"]

Z_95 = 1.959963984540054
#: the fields of ``offerbandit lift --json`` (CONTRACT.md §4), in order
JSON_FIELDS = ("campaign", "treated_decisions", "treated_mean_reward", "holdout_decisions", "holdout_mean_reward",
               "lift", "ci_low", "ci_high")


@dataclass(frozen=True)
class GroupMean:
    """A group's mean reward per decision, with its cluster-robust variance (None below two customers)."""

    decisions: int
    customers: int
    mean: float | None
    variance: float | None


@dataclass(frozen=True)
class LiftReport:
    campaign: str
    treated_decisions: int
    treated_mean_reward: float | None
    holdout_decisions: int
    holdout_mean_reward: float | None
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    treated_customers: int
    holdout_customers: int


def group_mean(by_customer: Mapping[str, tuple[float, int]]) -> GroupMean:
    """``by_customer``: customer -> (reward sum, decisions)."""
    sums = [s for s, _ in by_customer.values()]
    counts = [c for _, c in by_customer.values()]
    total = sum(counts)
    if total == 0:
        return GroupMean(0, 0, None, None)
    mean = sum(sums) / total
    n = len(counts)
    if n < 2:
        return GroupMean(total, n, mean, None)
    squares = sum((s - mean * c) ** 2 for s, c in zip(sums, counts))
    return GroupMean(total, n, mean, n / (n - 1) * squares / total ** 2)


def lift_of(campaign: str, outcomes: Iterable[LiftOutcome]) -> LiftReport:
    groups: dict[bool, dict[str, list[float]]] = {False: defaultdict(lambda: [0.0, 0]),
                                                   True: defaultdict(lambda: [0.0, 0])}
    for outcome in outcomes:
        cell = groups[outcome.held_out][outcome.user_key]
        cell[0] += outcome.reward
        cell[1] += 1
    treated = group_mean({k: (s, c) for k, (s, c) in groups[False].items()})
    holdout = group_mean({k: (s, c) for k, (s, c) in groups[True].items()})
    lift = low = high = None
    if treated.mean is not None and holdout.mean is not None:
        lift = treated.mean - holdout.mean
        if treated.variance is not None and holdout.variance is not None:
            half = Z_95 * math.sqrt(treated.variance + holdout.variance)
            low, high = lift - half, lift + half
    return LiftReport(campaign, treated.decisions, treated.mean, holdout.decisions, holdout.mean, lift, low, high,
                      treated.customers, holdout.customers)


def lift_reports(where: Path | str, defaults: RewardDefaults, windows: Mapping[str, float], *,
                 aggregations: Mapping[str, str] | None = None, campaign: str | None = None,
                 now: float | None = None, default_window_s: float = 86400.0) -> list[LiftReport]:
    """One report per campaign of the log at ``where`` (or only ``campaign``). ``windows``: each campaign's
    reward window in seconds (for ``no_contact`` decisions, which have no format); ``aggregations``: each
    campaign's ``first`` or ``sum`` (default ``first``)."""
    aggregations = aggregations or {}
    now = time.time() if now is None else now
    with open_log(where) as log:
        present = log.campaigns()
        if campaign is not None and campaign not in present:
            raise InvalidInput(f"the log has no decision of campaign {campaign!r} (it has: "
                               f"{', '.join(present) or 'none'})", field="campaign")
        chosen = [campaign] if campaign is not None else list(present)
        return [lift_of(name, log.lift_outcomes(name, defaults, windows.get(name, default_window_s), now,
                                                aggregation=aggregations.get(name, "first")))
                for name in chosen]


def lift_json(reports: Iterable[LiftReport]) -> str:
    """``{"campaigns": [...]}`` with exactly the contract's fields (null where undefined)."""
    rows = [{name: asdict(report)[name] for name in JSON_FIELDS} for report in reports]
    return json.dumps({"campaigns": rows})
