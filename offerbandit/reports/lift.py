"""Incremental lift of the served policy over the campaign's holdout: the randomised proof of what it adds.

``lift`` = mean reward per decision of the *treated* (every decision that is not ``holdout``, ``no_contact``
included) minus the holdout's, each over the decisions whose reward window closed
(`decision_log.counting.lift_reward`: whether or not a reward came earlier; a closed window without a reward
counts the default reward, an open one is left out; intention to treat: deferred decisions count whether
activated or not).

Groups (``--by-version``, ``--every``): a decision belongs to the version that served it when it was decided
(its logged ``policy_version``; holdout decisions carry the serving version too) and to the period of its
decision time (UTC, periods aligned on multiples of their length since the epoch). The holdout of a group is
the holdout decisions of the same version and period: the control group of the traffic that version served,
decided over the same days by the same assignment, so seasonality and drift between versions cancel.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from decision_log import DecisionLog, LiftOutcome, RewardDefaults, open_log
from offerbandit.errors import InvalidInput

__all__ = ["Z_95", "CampaignLift", "GroupMean", "LiftGroup", "LiftReport", "LiftSettings", "campaign_lifts",
           "group_mean", "grouped_lift", "lift_json", "lift_of", "log_lifts"]

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
    treated_variance: float | None = None
    holdout_variance: float | None = None


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
                      treated.customers, holdout.customers, treated.variance, holdout.variance)


@dataclass(frozen=True)
class LiftSettings:
    """What lift needs of the configuration: default rewards and ranges, each campaign's reward window (for
    decisions without a format) and its per-format windows (for deferred decisions never activated)."""

    defaults: RewardDefaults = field(default_factory=RewardDefaults)
    windows: Mapping[str, float] = field(default_factory=dict)
    format_windows: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    default_window_s: float = 86400.0

    def window_of(self, campaign: str) -> float:
        return float(self.windows.get(campaign, self.default_window_s))


@dataclass(frozen=True)
class LiftGroup:
    """The lift of one group of a campaign's decisions: one serving version (None: every version) and one
    period ``[period_start, period_end)`` of decision time (None: all time)."""

    policy_version: str | None
    period_start: float | None
    period_end: float | None
    report: LiftReport


@dataclass(frozen=True)
class CampaignLift:
    """A campaign's lift over all its decisions, and per group when grouping was asked for."""

    report: LiftReport
    groups: tuple[LiftGroup, ...] = ()
    #: the decision times the counted decisions span (None: none counted): what the report covers, since
    #: retention (``[log] retention_days``) and erasure remove older rows
    first_decided_at: float | None = None
    last_decided_at: float | None = None


def _version_order(version: str) -> tuple[int, int, str]:
    return (1, int(version), "") if version.isdigit() else (0, 0, version)


def grouped_lift(campaign: str, outcomes: Sequence[LiftOutcome], *, by_version: bool = False,
                 every_s: float | None = None) -> tuple[LiftGroup, ...]:
    """Lift per serving version and/or per period of decision time, treated against the holdout of the
    same group; groups ordered by version (numbers numerically), then period."""
    if not by_version and every_s is None:
        return ()
    cells: dict[tuple[str | None, float | None], list[LiftOutcome]] = defaultdict(list)
    for outcome in outcomes:
        start = math.floor(outcome.decided_at / every_s) * every_s if every_s is not None else None
        cells[(outcome.policy_version if by_version else None, start)].append(outcome)
    ordered = sorted(cells, key=lambda key: (_version_order(key[0] or ""), key[1] or 0.0))
    return tuple(LiftGroup(version, start, None if start is None else start + every_s,
                           lift_of(campaign, cells[(version, start)])) for version, start in ordered)


def log_lifts(log: DecisionLog, settings: LiftSettings, campaigns: Sequence[str], *, now: float | None = None,
              by_version: bool = False, every_s: float | None = None) -> list[CampaignLift]:
    """Each campaign's lift over an open log (one pass over its decisions), grouped as asked."""
    now = time.time() if now is None else now
    lifts = []
    for name in campaigns:
        outcomes = list(log.lift_outcomes(name, settings.defaults, settings.window_of(name), now,
                                          format_windows=settings.format_windows.get(name, {})))
        times = [outcome.decided_at for outcome in outcomes]
        lifts.append(CampaignLift(lift_of(name, outcomes),
                                  grouped_lift(name, outcomes, by_version=by_version, every_s=every_s),
                                  min(times, default=None), max(times, default=None)))
    return lifts


def campaign_lifts(where: Path | str, settings: LiftSettings, *, campaign: str | None = None,
                   now: float | None = None, by_version: bool = False,
                   every_s: float | None = None) -> list[CampaignLift]:
    """One `CampaignLift` per campaign of the log at ``where`` (or only ``campaign``)."""
    with open_log(where) as log:
        present = log.campaigns()
        if campaign is not None and campaign not in present:
            raise InvalidInput(f"the log has no decision of campaign {campaign!r} (it has: "
                               f"{', '.join(present) or 'none'})", field="campaign")
        chosen = [campaign] if campaign is not None else list(present)
        return log_lifts(log, settings, chosen, now=now, by_version=by_version, every_s=every_s)


def _utc(when: float | None) -> str | None:
    return None if when is None else datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fields(report: LiftReport) -> dict[str, object]:
    values = asdict(report)
    return {name: values[name] for name in JSON_FIELDS}


def lift_json(lifts: Iterable[CampaignLift]) -> str:
    """``{"campaigns": [...]}`` with exactly the contract's fields (null where undefined); a campaign that was
    grouped also has ``groups``: one object per group with ``policy_version`` (null unless by version),
    ``period_start`` and ``period_end`` (UTC ISO 8601, null unless by period) and the contract's fields."""
    rows = []
    for lift in lifts:
        row = _fields(lift.report)
        if lift.groups:
            row["groups"] = [{"policy_version": g.policy_version, "period_start": _utc(g.period_start),
                              "period_end": _utc(g.period_end), **_fields(g.report)} for g in lift.groups]
        rows.append(row)
    return json.dumps({"campaigns": rows})
