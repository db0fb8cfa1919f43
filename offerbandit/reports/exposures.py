"""How much, where, and at what cost a policy explores: computed from a sequence of exposures.

Definitions (n = number of exposures; a *discovery* is an exposure with ``new_category`` and a
positive reward, i.e. the customer answered an offer from a category new to them):

- ``share_outside_history``: exposures drawn by the novelty component / n (``share_explore`` and
  ``share_exploit`` likewise for the other labels);
- ``catalogue_coverage``: mean over customers of (distinct offers they were shown / catalogue size);
- ``distinct_categories_last_n``: mean over customers of the distinct categories among their last
  ``last_n`` exposures (by time);
- ``discovery_rate_per_decision``: discoveries / n; ``discovery_rate_per_novel_draw``: discoveries made
  by novelty draws / novelty draws;
- ``mean_reward_<label>``: mean reward of the exposures with that label whose reward is known (None
  rewards are left out); ``exploration_cost`` = mean_reward_exploit - mean_reward_outside_history;
- ``exposure_gini``: Gini coefficient of exposure counts across the catalogue's offers (0: equal
  exposure; (k-1)/k: one of k offers gets everything).

Undefined values (no novelty draws, no known rewards, ...) are NaN, and left out of `as_metrics`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from policies.sampler import EXPLOIT, EXPLORE, EXPLORE_OUTSIDE_HISTORY

_LABELS = (EXPLOIT, EXPLORE, EXPLORE_OUTSIDE_HISTORY)


@dataclass(frozen=True, slots=True)
class ExposureRecord:
    """One offer shown to one customer (no_contact decisions are not exposures)."""

    user_key: str
    when: float
    offer_id: str
    category: str
    format: str
    time_slot: str
    exploration: str
    reward: float | None
    new_category: bool


@dataclass(frozen=True, slots=True)
class ExplorationReport:
    """See the module docstring for each definition."""

    n_decisions: int
    n_customers: int
    share_outside_history: float
    share_explore: float
    share_exploit: float
    catalogue_coverage: float
    distinct_categories_last_n: float
    last_n: int
    discoveries: int
    discovery_rate_per_decision: float
    discovery_rate_per_novel_draw: float
    mean_reward_outside_history: float
    mean_reward_explore: float
    mean_reward_exploit: float
    exploration_cost: float
    exposure_gini: float

    def as_metrics(self, prefix: str = "exploration.") -> dict[str, float]:
        """Flat metric names for MLflow; NaN values are left out."""
        return {f"{prefix}{name}": float(value) for name, value in asdict(self).items()
                if math.isfinite(float(value))}


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 for equal counts; NaN when all are zero)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    total = x.sum()
    if x.size == 0 or total <= 0:
        return math.nan
    n = x.size
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * np.dot(ranks, x) / (n * total) - (n + 1.0) / n)


def _mean_where(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else math.nan


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def exploration_report(records: Sequence[ExposureRecord], *, catalogue: Sequence[str] | None = None,
                       last_n: int = 10) -> ExplorationReport:
    """Summarise exposures. ``catalogue`` (offer ids) sizes coverage and includes never-shown offers in
    the Gini; without it, the offers seen in ``records`` are the catalogue."""
    check_scalar(last_n, "last_n", int, low=1)
    n = len(records)
    labels = np.array([r.exploration for r in records], dtype=object)
    unknown = set(labels.tolist()) - set(_LABELS)
    if unknown:
        raise InvalidInput(f"unknown exploration labels {sorted(unknown)}; exposures carry {_LABELS}",
                           field="exploration")

    users, user_idx = np.unique(np.array([r.user_key for r in records], dtype=object), return_inverse=True)
    offer_ids = [r.offer_id for r in records]
    catalogue_ids = list(dict.fromkeys(catalogue)) if catalogue is not None else []
    offers, offer_idx = np.unique(np.array(catalogue_ids + offer_ids, dtype=object), return_inverse=True)
    offer_idx = offer_idx[len(catalogue_ids):]
    _, category_idx = np.unique(np.array([r.category for r in records], dtype=object), return_inverse=True)
    when = np.fromiter((r.when for r in records), dtype=np.float64, count=n)
    rewards = np.fromiter((math.nan if r.reward is None else r.reward for r in records), dtype=np.float64, count=n)
    new_category = np.fromiter((r.new_category for r in records), dtype=bool, count=n)

    is_novel = labels == EXPLORE_OUTSIDE_HISTORY
    known = ~np.isnan(rewards)
    discovered = new_category & known & (np.nan_to_num(rewards) > 0)
    n_users = len(users)

    # Coverage: distinct (user, offer) pairs per user / catalogue size.
    catalogue_size = len(offers)
    pairs = np.unique(user_idx.astype(np.int64) * catalogue_size + offer_idx)
    offers_per_user = np.bincount(pairs // catalogue_size, minlength=n_users)
    coverage = float(np.mean(offers_per_user / catalogue_size)) if n_users else math.nan

    # Distinct categories among each user's last `last_n` exposures.
    order = np.lexsort((when, user_idx))
    sorted_users = user_idx[order]
    per_user = np.bincount(sorted_users, minlength=n_users)
    first = np.concatenate(([0], np.cumsum(per_user)[:-1])) if n_users else np.zeros(0, dtype=np.int64)
    rank_from_end = per_user[sorted_users] - (np.arange(n) - first[sorted_users])  # 1 = the latest
    recent = order[rank_from_end <= last_n]
    n_categories = int(category_idx.max()) + 1 if n else 1
    recent_pairs = np.unique(user_idx[recent].astype(np.int64) * n_categories + category_idx[recent])
    categories_per_user = np.bincount(recent_pairs // n_categories, minlength=n_users)
    distinct_recent = float(np.mean(categories_per_user)) if n_users else math.nan

    novel_reward = _mean_where(rewards, is_novel & known)
    exploit_reward = _mean_where(rewards, (labels == EXPLOIT) & known)
    return ExplorationReport(
        n_decisions=n,
        n_customers=n_users,
        share_outside_history=_ratio(int(is_novel.sum()), n),
        share_explore=_ratio(int((labels == EXPLORE).sum()), n),
        share_exploit=_ratio(int((labels == EXPLOIT).sum()), n),
        catalogue_coverage=coverage,
        distinct_categories_last_n=distinct_recent,
        last_n=last_n,
        discoveries=int(discovered.sum()),
        discovery_rate_per_decision=_ratio(int(discovered.sum()), n),
        discovery_rate_per_novel_draw=_ratio(int((discovered & is_novel).sum()), int(is_novel.sum())),
        mean_reward_outside_history=novel_reward,
        mean_reward_explore=_mean_where(rewards, (labels == EXPLORE) & known),
        mean_reward_exploit=exploit_reward,
        exploration_cost=exploit_reward - novel_reward,
        exposure_gini=gini(np.bincount(offer_idx, minlength=catalogue_size)) if catalogue_size else math.nan,
    )
