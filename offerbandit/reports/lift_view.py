"""The product owner's view of lift in MLflow: per version, the metrics, the run description and a chart.

Metric names sort so that MLflow's compare view (keys in alphabetical order) leads with them: ``lift``,
``lift_high``, ``lift_low`` (the 95% interval), then ``live_reward``, ``live_reward_high``, ``live_reward_low``
(the treated decisions' mean reward per decision once their windows closed, with its cluster-robust
interval, customer as unit), then the counts behind them (``n_holdout_customers``, ``n_holdout_decisions``,
``n_treated_customers``, ``n_treated_decisions``) and the holdout's mean reward (``reward_holdout_mean``).
A value that is undefined (no holdout yet, one customer) is left out rather than logged as a number.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from offerbandit.reports.lift import Z_95, LiftGroup, LiftReport
from offerbandit.reports.plots import EstimateInterval, plot_estimates

__all__ = ["lift_description", "lift_metrics", "live_reward_interval", "plot_lift_by_version"]


def live_reward_interval(report: LiftReport) -> tuple[float, float] | None:
    """The treated mean reward's 95% interval from its (cluster-robust) variance; None when undefined."""
    if report.treated_mean_reward is None or report.treated_variance is None:
        return None
    half = Z_95 * math.sqrt(report.treated_variance)
    return report.treated_mean_reward - half, report.treated_mean_reward + half


def lift_metrics(report: LiftReport) -> dict[str, float]:
    """The metrics of one version's lift (see the module docstring for the names)."""
    live_interval = live_reward_interval(report)
    values: dict[str, float | None] = {
        "lift": report.lift, "lift_low": report.ci_low, "lift_high": report.ci_high,
        "n_treated_decisions": float(report.treated_decisions),
        "n_treated_customers": float(report.treated_customers),
        "n_holdout_decisions": float(report.holdout_decisions),
        "n_holdout_customers": float(report.holdout_customers),
        "reward_holdout_mean": report.holdout_mean_reward,
        "live_reward": report.treated_mean_reward,
        "live_reward_low": None if live_interval is None else live_interval[0],
        "live_reward_high": None if live_interval is None else live_interval[1],
    }
    return {name: float(value) for name, value in values.items() if value is not None and math.isfinite(value)}


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def lift_description(version: str, report: LiftReport, updated_at: str) -> str:
    """The run's description (Markdown): live reward and lift with their intervals first, then the counts."""
    live_interval = live_reward_interval(report)
    live = _num(report.treated_mean_reward)
    if live_interval is not None:
        live += f" [{_num(live_interval[0])}, {_num(live_interval[1])}]"
    lift = _num(report.lift, signed=True)
    if report.ci_low is not None and report.ci_high is not None:
        lift += f" [{_num(report.ci_low, True)}, {_num(report.ci_high, True)}]"
    return (f"**Live reward** {live} per decision; **lift over the holdout** {lift} (95% intervals, customer as "
            f"unit).\n\nVersion {version}: {report.treated_decisions} treated decisions "
            f"({report.treated_customers} customers) against {report.holdout_decisions} holdout decisions "
            f"({report.holdout_customers} customers, mean reward {_num(report.holdout_mean_reward)}) decided while "
            f"it served, counted once their reward windows closed. Updated {updated_at}.")


def plot_lift_by_version(groups: Sequence[LiftGroup], path: str | os.PathLike[str], *,
                         campaign: str) -> Path | None:
    """Lift over the holdout per version with its 95% interval (PNG); None when no version has one."""
    estimates = [EstimateInterval("lift over the holdout", f"v{g.policy_version}", g.report.lift, g.report.ci_low,
                                  g.report.ci_high)
                 for g in groups if g.policy_version is not None and g.report.lift is not None
                 and g.report.ci_low is not None and g.report.ci_high is not None]
    if not estimates:
        return None
    return plot_estimates(estimates, path, reference=0.0, reference_label="no lift",
                          title=f"{campaign}: lift of each version over the holdout (95% interval)",
                          xlabel="policy version", ylabel="treated - holdout mean reward per decision")
