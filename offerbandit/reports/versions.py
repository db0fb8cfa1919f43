"""Product-owner view of each policy version, computed from the decision log and logged to MLflow.

For every registered version that served decisions: live reward (mean with a 95% interval),
decision count, exploration shares, the exploration report (``exploration.*``) and its value per UTC
day (``exploration_daily.*``, a metric history with one step per day the version served), a
reward-over-time plot (all versions on one chart, so the lineage's progress is visible) and a format x
time-slot heatmap of its reward. Each lands as an evaluation run linked to its version, so MLflow's
compare view lines versions up.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from decision_log import ServedOutcome, open_log
from offerbandit.reports.exploration import LoggedExposure, exposures_from_log, period_reports, version_reports
from policy_registry import MetricPoint, PolicyRegistry
from offerbandit.reports.plots import RewardSeries, plot_format_slot_heatmap, plot_reward_over_time, reward_grid


@dataclass(frozen=True)
class VersionStats:
    version: str
    n: int
    reward_mean: float
    reward_ci_half_width: float
    exploration_share: dict[str, float]
    times: np.ndarray
    rewards: np.ndarray
    formats: tuple[str, ...]
    time_slots: tuple[str, ...]

    def metrics(self) -> dict[str, float]:
        values = {"live.decisions": float(self.n), "live.reward_mean": self.reward_mean,
                  "live.reward_ci_low": self.reward_mean - self.reward_ci_half_width,
                  "live.reward_ci_high": self.reward_mean + self.reward_ci_half_width}
        values.update({f"exploration.share_{k}": v for k, v in self.exploration_share.items()})
        return values


def version_stats(data_dir: Path, campaign: str = "default") -> list[VersionStats]:
    """Per serving version: learned decisions (final reward known) with their rewards."""
    with open_log(data_dir) as log:
        outcomes = log.served_outcomes(campaign)
    grouped: dict[str, list[ServedOutcome]] = defaultdict(list)
    for outcome in outcomes:
        grouped[outcome.policy_version].append(outcome)
    stats = []
    for version, items in grouped.items():
        rewards = np.array([r.reward or 0.0 for r in items], dtype=np.float64)
        n = len(rewards)
        half = 1.96 * rewards.std(ddof=1) / math.sqrt(n) if n > 1 else 0.0
        kinds: dict[str, int] = defaultdict(int)
        for r in items:
            kinds[r.exploration] += 1
        stats.append(VersionStats(version, n, float(rewards.mean()), float(half),
                                  {k: v / n for k, v in sorted(kinds.items())},
                                  np.array([r.decided_at for r in items]), rewards,
                                  tuple(r.format for r in items), tuple(r.time_slot for r in items)))
    return stats


DAY_S = 86_400.0


def daily_exploration_series(exposures: Sequence[LoggedExposure]) -> list[MetricPoint]:
    """The exploration report per UTC day of one version's exposures, as metric points
    ``exploration_daily.<name>``: step = the day's index among the days it served (0 = its first),
    timestamp = the day's start."""
    return [MetricPoint(key, value, step, start)
            for step, (start, report) in enumerate(period_reports(exposures, DAY_S))
            for key, value in report.as_metrics(prefix="exploration_daily.").items()]


def log_version_reports(data_dir: Path, registry: PolicyRegistry, campaign: str = "default",
                        extra_metrics: dict[str, dict[str, float]] | None = None) -> dict[str, str]:
    """One evaluation run per registered version that served; returns version -> run id."""
    exposures = [e for e in exposures_from_log(data_dir) if e.campaign == campaign]
    exploration = version_reports(exposures)
    exposures_of: dict[str, list[LoggedExposure]] = defaultdict(list)
    for exposure in exposures:
        exposures_of[exposure.policy_version].append(exposure)
    stats = version_stats(data_dir, campaign)
    out_dir = Path(data_dir) / "reports"
    over_time = plot_reward_over_time([RewardSeries(f"version {s.version}", s.times, s.rewards) for s in stats],
                                      out_dir / "reward_over_time.png") if stats else None
    runs = {}
    for s in stats:
        if not s.version.isdigit():
            continue  # "bootstrap" is no registered version
        heatmap = plot_format_slot_heatmap(reward_grid(s.formats, s.time_slots, s.rewards),
                                           out_dir / f"heatmap_v{s.version}.png")
        metrics = {**s.metrics(), **(extra_metrics or {}).get(s.version, {})}
        if s.version in exploration:
            metrics.update(exploration[s.version].as_metrics())
        runs[s.version] = registry.log_evaluation(campaign, s.version, metrics,
                                                  {"reward_over_time": over_time, "format_slot_heatmap": heatmap},
                                                  series=daily_exploration_series(exposures_of[s.version]))
    return runs
