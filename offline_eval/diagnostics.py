"""Diagnostics of an evaluation's importance weights and support, with plain-language warnings."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offline_eval.vectors import EventVectors, PolicyFacts

# Thresholds for warnings; conservative so that a warning means "look at this before trusting it".
MIN_EFFECTIVE_SAMPLE_SIZE = 100.0
MIN_EFFECTIVE_SAMPLE_RATIO = 0.01
MAX_SINGLE_EVENT_WEIGHT_SHARE = 0.05
MAX_SUPPORT_DEFICIENCY = 0.01
MAX_CLIPPED_SHARE = 0.05


@dataclass(frozen=True)
class Diagnostics:
    """``effective_sample_size`` = (sum w)^2 / sum w^2 (Kish); ``support_deficiency`` = mean target
    mass on arms the logger's pmf gives probability 0 (or, without a logging pmf, on arms never
    played anywhere in the log; None when unknown)."""

    n_events: int
    effective_sample_size: float
    max_importance_weight: float
    mean_importance_weight: float
    mean_weight_standard_error: float
    support_deficiency: float | None
    support_source: str
    target_is_deterministic: bool
    logger_is_uniform: bool | None

    @property
    def effective_sample_ratio(self) -> float:
        return self.effective_sample_size / self.n_events

    def warnings(self) -> tuple[str, ...]:
        """Plain-language reasons why weight-based estimates may be unreliable (empty if none)."""
        found: list[str] = []
        if self.effective_sample_size == 0.0:
            found.append(
                "The target policy never chooses any logged action: importance-weighted "
                "estimates have no data behind them."
            )
            return tuple(found)
        if (
            self.effective_sample_size < MIN_EFFECTIVE_SAMPLE_SIZE
            or self.effective_sample_ratio < MIN_EFFECTIVE_SAMPLE_RATIO
        ):
            found.append(
                f"Only about {self.effective_sample_size:.0f} effective events out of "
                f"{self.n_events} (importance weights are very uneven): weighted estimates are "
                "unstable and their intervals may be too narrow."
            )
        share = self.max_importance_weight / (self.mean_importance_weight * self.n_events)
        if share > MAX_SINGLE_EVENT_WEIGHT_SHARE:
            found.append(
                f"A single event carries {100 * share:.0f}% of the total importance weight."
            )
        if self.support_deficiency is not None and self.support_deficiency > MAX_SUPPORT_DEFICIENCY:
            where = (
                "arms the logging policy gives probability 0"
                if self.support_source == "logging_pmf"
                else "arms that were never played in this log"
            )
            found.append(
                f"The target policy puts {100 * self.support_deficiency:.1f}% of its probability "
                f"on {where}: importance-weighted estimates cannot see those rewards (biased), "
                "and DM/DR rely on the reward model there."
            )
        gap = abs(self.mean_importance_weight - 1.0)
        if gap > max(0.05, 4.0 * self.mean_weight_standard_error):
            found.append(
                f"The mean importance weight is {self.mean_importance_weight:.3f} where 1 is "
                "expected: the logged propensities may be wrong, or the target favours actions "
                "the logger rarely or never plays."
            )
        return tuple(found)


def diagnose(vectors: EventVectors, facts: PolicyFacts) -> Diagnostics:
    weight = vectors.weight
    n = vectors.n_events
    total = float(weight.sum())
    squares = float(np.dot(weight, weight))
    return Diagnostics(
        n_events=n,
        effective_sample_size=0.0 if squares == 0.0 else total * total / squares,
        max_importance_weight=float(weight.max()),
        mean_importance_weight=total / n,
        mean_weight_standard_error=float(weight.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
        support_deficiency=facts.support_deficiency,
        support_source=facts.support_source,
        target_is_deterministic=facts.target_is_deterministic,
        logger_is_uniform=facts.logger_is_uniform,
    )


def replay_warnings(diagnostics: Diagnostics, n_matches: int) -> tuple[str, ...]:
    found: list[str] = []
    if not diagnostics.target_is_deterministic:
        found.append(
            "Replay needs a deterministic target policy (one-hot rows); this target is stochastic, "
            "so replay only counts events where it puts probability 1 on the logged action and is "
            "biased. Use ipw or snipw."
        )
    if diagnostics.logger_is_uniform is False:
        found.append(
            "Replay assumes a uniformly random logging policy; these logs come from a non-uniform "
            "one, so replay is biased. Use ipw or snipw."
        )
    elif diagnostics.logger_is_uniform is None:
        found.append(
            "Replay assumes a uniformly random logging policy; that cannot be confirmed from these "
            "propensities (pass logging_pmf to check)."
        )
    if n_matches == 0:
        found.append("Replay found no event where the target agrees with the logged action.")
    return tuple(found)


def clipping_warning(key: str, share: float | None) -> tuple[str, ...]:
    if share is None or share <= MAX_CLIPPED_SHARE:
        return ()
    return (
        f"{key}: {100 * share:.1f}% of events have their importance weight clipped or shrunk, "
        "which trades variance for bias.",
    )
