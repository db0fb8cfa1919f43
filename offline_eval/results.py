"""The records of an offline evaluation run: the windows of the log it used, each target policy's
outcome, and the whole report (what ``offerbandit eval`` shows and records)."""
from __future__ import annotations

from dataclasses import dataclass

from offline_eval.evaluation import Evaluation
from offline_eval.log_dataset import Exclusions, LogFilter

__all__ = ["EvaluationReport", "PolicyResult", "Window"]


@dataclass(frozen=True)
class Window:
    """Dataset rows ``[start, stop)`` and the decision times they span (first, last)."""

    start: int
    stop: int
    first_time: float | None
    last_time: float | None

    @property
    def n_events(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class PolicyResult:
    """One target's outcome. ``evaluation`` is None when no event was left to evaluate it on."""

    policy: str
    label: str
    kind: str
    version: str | None
    window: Window
    trained_on: Window | None
    evaluation: Evaluation | None
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class EvaluationReport:
    """Everything ``offerbandit eval`` shows. ``logged_value``: the logger's mean reward on the
    evaluation window (the on-policy reference)."""

    data_dir: str
    campaign: str
    log_filter: LogFilter
    n_events: int
    exclusions: Exclusions
    training: Window
    evaluation: Window
    logged_value: float
    estimators: tuple[str, ...]
    alpha: float
    n_bootstrap: int
    seed: int
    train_fraction: float
    reward_model_folds: int | None
    policies: tuple[PolicyResult, ...]

    def result(self, policy: str) -> PolicyResult:
        for result in self.policies:
            if result.policy == policy:
                return result
        raise KeyError(policy)
