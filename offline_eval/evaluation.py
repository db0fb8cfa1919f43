"""``evaluate``: run several estimators on one log, with intervals, diagnostics and warnings."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from offline_eval import _validation as check
from offline_eval.diagnostics import Diagnostics, clipping_warning, diagnose, replay_warnings
from offline_eval.estimators import ESTIMATORS, OffPolicyEstimator, ReplayMethod, resolve
from offline_eval.feedback import LoggedFeedback
from offline_eval.intervals import normal_interval, percentile_interval, points_and_replicates
from offline_eval.ragged import RaggedMatrix
from offline_eval import vectors as reduce
from offerbandit.errors import InvalidInput

DEFAULT_N_BOOTSTRAP = 500


@dataclass(frozen=True)
class EstimateResult:
    """One estimator's estimate. ``ci_low``/``ci_high``: percentile bootstrap interval at level
    1 - alpha (the analytic one when ``n_bootstrap`` = 0); ``normal_low``/``normal_high``: Wald interval
    from the influence function (delta method for ratio estimators), ``standard_error`` its se. Both
    intervals always hold ``value`` (``ci_low <= value <= ci_high``)."""

    name: str
    estimator: OffPolicyEstimator
    value: float
    ci_low: float
    ci_high: float
    normal_low: float
    normal_high: float
    standard_error: float
    interval_method: str
    clipped_share: float | None
    warnings: tuple[str, ...]


class Evaluation(Mapping[str, EstimateResult]):
    """Read-only mapping estimator key -> :class:`EstimateResult`, plus shared diagnostics."""

    def __init__(
        self,
        results: Sequence[EstimateResult],
        diagnostics: Diagnostics,
        alpha: float,
        n_bootstrap: int,
    ) -> None:
        self._results = {result.name: result for result in results}
        self.diagnostics = diagnostics
        self.alpha = alpha
        self.n_bootstrap = n_bootstrap

    def __getitem__(self, key: str) -> EstimateResult:
        return self._results[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Every distinct warning of the evaluation, in order."""
        return tuple(dict.fromkeys(w for r in self._results.values() for w in r.warnings))

    def summary(self) -> str:
        level = f"{100 * (1 - self.alpha):g}%"
        d = self.diagnostics
        lines = [f"{'estimator':<12} {'value':>10} {level + ' low':>10} {level + ' high':>10}"]
        for result in self._results.values():
            lines.append(
                f"{result.name:<12} {result.value:>10.5f} {result.ci_low:>10.5f} "
                f"{result.ci_high:>10.5f}"
            )
        lines.append(
            f"events {d.n_events}, effective sample size {d.effective_sample_size:.0f}, "
            f"max weight {d.max_importance_weight:.3g}, mean weight {d.mean_importance_weight:.3f}"
        )
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def evaluate(
    feedback: LoggedFeedback,
    target_pmf: np.ndarray | RaggedMatrix,
    q_hat: np.ndarray | RaggedMatrix | None = None,
    estimators: Iterable[str | OffPolicyEstimator] | None = None,
    alpha: float = 0.05,
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    random_state: int | np.random.Generator | None = None,
    logging_pmf: np.ndarray | RaggedMatrix | None = None,
) -> Evaluation:
    """Estimate the value of ``target_pmf`` from ``feedback`` with each estimator.

    ``target_pmf``, ``q_hat``, ``logging_pmf``: dense (n, n_actions) arrays, or
    :class:`RaggedMatrix` rows of one shared layout (``feedback.action`` then indexes each event's
    candidate set). ``estimators``: names (defaults of :data:`ESTIMATORS`) or configured instances;
    None = ipw, snipw, replay when the target is deterministic, and the DM/DR family when ``q_hat``
    is given. ``logging_pmf`` (optional) sharpens diagnostics (support, uniform logger check).
    """
    if not isinstance(feedback, LoggedFeedback):
        raise InvalidInput("`feedback` must be a LoggedFeedback", field="feedback")
    alpha = check.check_alpha(alpha)
    n_bootstrap = check.check_n_bootstrap(n_bootstrap)
    rng = check.as_generator(random_state)
    if isinstance(target_pmf, RaggedMatrix):
        vectors, facts = reduce.from_ragged(feedback, target_pmf, q_hat, logging_pmf)
    else:
        for name, value in (("q_hat", q_hat), ("logging_pmf", logging_pmf)):
            if isinstance(value, RaggedMatrix):
                raise InvalidInput(
                    f"`{name}` is ragged but `target_pmf` is dense; pass both in one form",
                    field=name,
                )
        vectors, facts = reduce.from_dense(feedback, target_pmf, q_hat, logging_pmf)

    chosen = _choose(estimators, has_q_hat=q_hat is not None, deterministic=facts.target_is_deterministic)
    for estimator in chosen:
        if estimator.requires_q_hat and q_hat is None:
            raise InvalidInput(f"estimator `{estimator.key}` needs `q_hat`", field="q_hat")

    diagnostics = diagnose(vectors, facts)
    weight_warnings = diagnostics.warnings()
    terms = [estimator.round_terms(vectors) for estimator in chosen]
    # The point and the resamples come out of one matrix product (same summation order), and each
    # interval is widened if it must be to hold its point: ci_low <= value <= ci_high always.
    points, replicates = points_and_replicates(terms, n_bootstrap, rng)

    results = []
    for j, (estimator, estimator_terms) in enumerate(zip(chosen, terms)):
        value = float(points[j])
        normal, se = normal_interval(estimator_terms, alpha, value)
        if n_bootstrap > 0:
            interval, method = percentile_interval(replicates[:, j], alpha, value), "bootstrap percentile"
        else:
            interval, method = normal, "normal"
        share = estimator.clipped_share(vectors)
        notes: tuple[str, ...] = ()
        if isinstance(estimator, ReplayMethod):
            notes += replay_warnings(diagnostics, int((vectors.target_prob == 1.0).sum()))
        elif estimator.uses_importance_weights:
            notes += weight_warnings
        notes += clipping_warning(estimator.key, share)
        results.append(
            EstimateResult(
                name=estimator.key,
                estimator=estimator,
                value=value,
                ci_low=interval.low,
                ci_high=interval.high,
                normal_low=normal.low,
                normal_high=normal.high,
                standard_error=se,
                interval_method=method,
                clipped_share=share,
                warnings=notes,
            )
        )
    return Evaluation(results, diagnostics, alpha, n_bootstrap)


def _choose(
    estimators: Iterable[str | OffPolicyEstimator] | None, *, has_q_hat: bool, deterministic: bool
) -> list[OffPolicyEstimator]:
    if estimators is None:
        chosen = [
            ESTIMATORS[name]()
            for name in ESTIMATORS
            if (has_q_hat or not ESTIMATORS[name].requires_q_hat)
            and (deterministic or name != ReplayMethod.name)
        ]
        return chosen
    if isinstance(estimators, (str, OffPolicyEstimator)):
        estimators = [estimators]
    chosen = [resolve(spec) for spec in estimators]
    if not chosen:
        raise InvalidInput("`estimators` must name at least one estimator", field="estimators")
    keys = [estimator.key for estimator in chosen]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise InvalidInput(
            f"estimator keys must be unique, {duplicates} repeated; give instances a `label`",
            field="estimators",
        )
    return chosen
