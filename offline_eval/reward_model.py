"""Cross-fitted reward model (q_hat) for the DM/DR estimators, on VW through the policy adapter.

Why cross-fitting: a reward model fit on the same events it scores overfits their noise, and DR's
correction term then no longer cancels its bias. Why *by time*: the log is adaptive (each decision
depends on what was learned before), so neighbouring events are not exchangeable and random row
splits leak. So the rows to score, ``[start, stop)`` of the dataset (the evaluation window), are cut
into ``n_folds`` contiguous time blocks; block j is scored by a fresh
:class:`~policies.vw.regressor.VWRewardRegressor` fit on every dataset event *outside* block j (the
training window before it and the other blocks, earlier and later), never on block j itself.

The result is a :class:`RaggedMatrix` aligned with the dataset's candidate sets (one expected
reward per logged eligible arm, in logged order).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from offline_eval.ragged import RaggedMatrix
from offline_eval.log_dataset import DEFAULT_CHUNK, LoggedDataset
from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from policies.vw.regressor import RewardRegressorConfig, VWRewardRegressor

ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RewardModelConfig:
    """``n_folds`` contiguous time blocks (>= 2); ``regressor`` the VW regression settings (its
    ``epochs`` passes stream over the training events each time)."""

    n_folds: int = 3
    regressor: RewardRegressorConfig = field(default_factory=RewardRegressorConfig)

    def __post_init__(self) -> None:
        check_scalar(self.n_folds, "n_folds", int, low=2, high=100)
        if not isinstance(self.regressor, RewardRegressorConfig):
            raise InvalidInput("regressor must be a RewardRegressorConfig", field="regressor")


@dataclass(frozen=True)
class TimeFold:
    """Block ``[predict_start, predict_stop)`` is scored by a model fit on ``training_ranges``."""

    index: int
    predict_start: int
    predict_stop: int
    training_ranges: tuple[tuple[int, int], ...]


def time_folds(n_events: int, start: int, stop: int, n_folds: int) -> tuple[TimeFold, ...]:
    """Cut ``[start, stop)`` into ``n_folds`` contiguous blocks; each trains on ``[0, n_events)``
    minus its own block."""
    if not 0 <= start < stop <= n_events:
        raise InvalidInput(f"rows {start}:{stop} are empty or outside 0:{n_events}", field="window")
    if stop - start < n_folds:
        raise InvalidInput(f"{stop - start} events cannot be cut into {n_folds} folds", field="n_folds")
    bounds = np.linspace(start, stop, n_folds + 1).round().astype(int)
    folds = []
    for j in range(n_folds):
        lo, hi = int(bounds[j]), int(bounds[j + 1])
        training = tuple((a, b) for a, b in ((0, lo), (hi, n_events)) if b > a)
        folds.append(TimeFold(j, lo, hi, training))
    return tuple(folds)


def cross_fit_q_hat(dataset: LoggedDataset, start: int = 0, stop: int | None = None,
                    config: RewardModelConfig = RewardModelConfig(), *,
                    progress: ProgressCallback | None = None, chunk: int = DEFAULT_CHUNK) -> RaggedMatrix:
    """Cross-fitted expected rewards for events ``start:stop``, laid out like their candidate sets,
    clipped into the range of logged rewards."""
    stop = dataset.n_events if stop is None else stop
    folds = time_folds(dataset.n_events, start, stop, config.n_folds)
    one_pass = replace(config.regressor, epochs=1)
    base = int(dataset.indptr[start])
    values = np.empty(int(dataset.indptr[stop]) - base, dtype=np.float64)
    for fold in folds:
        regressor = VWRewardRegressor(one_pass)
        try:
            for _ in range(config.regressor.epochs):
                for lo, hi in fold.training_ranges:
                    for events in dataset.learning_events(lo, hi, chunk=chunk):
                        regressor.fit(events)
            row = fold.predict_start
            for decisions in dataset.decisions(fold.predict_start, fold.predict_stop, chunk=chunk):
                predictions = regressor.predict_batch([(d.context, d.arm_set) for d in decisions])
                for prediction in predictions:
                    lo, hi = int(dataset.indptr[row]) - base, int(dataset.indptr[row + 1]) - base
                    values[lo:hi] = prediction
                    row += 1
        finally:
            regressor.close()
        if progress is not None:
            progress("reward model", fold.index + 1, len(folds))
    # A linear model extrapolates to arms the logger rarely played; expected rewards outside the range
    # of rewards ever observed are impossible, so they are clipped into it.
    observed = dataset.feedback.reward
    np.clip(values, float(observed.min()), float(observed.max()), out=values)
    indptr = dataset.indptr[start:stop + 1] - base
    return RaggedMatrix(indptr, values)
