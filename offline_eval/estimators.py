"""Off-policy estimators with the Open Bandit Pipeline definitions (Saito et al., 2021), pure numpy.

Notation (shapes (n,) unless said): r_i reward, a_i logged action, pi_b(a_i|x_i) = pscore_i,
pi_e target pmf (n, n_actions), w_i = pi_e(a_i|x_i) / pi_b(a_i|x_i) the importance weight,
q_hat (n, n_actions) a reward model, q_hat(x_i, pi_e) = sum_a pi_e(a|x_i) q_hat(x_i, a)
(divided by sum_a pi_e(a|x_i), as OBP's ``np.average`` does), E_n the mean over the n events.

Every estimator is a frozen dataclass whose hyper-parameters are checked in ``__post_init__``. It maps
the per-event vectors (:class:`offline_eval.vectors.EventVectors`) to :class:`RoundTerms`:

    V = E_n[base_i] + sum_i numerator_i / sum_i denominator_i      (denominator_i = 1 when absent)

That one shape covers plain means (IPW, DM, DR, Switch-DR, DRos) and self-normalised ratios (replay,
SNIPW, SNDR), and lets the bootstrap re-normalise inside each resample with matrix products.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from offline_eval import _validation as check
from offline_eval.vectors import EventVectors
from offerbandit.errors import InvalidInput


@dataclass(frozen=True, eq=False)
class RoundTerms:
    """V = mean(base) + sum(numerator) / sum(denominator); a missing part counts as 0 (base,
    numerator) or as n (denominator). 0/0 (no weight at all) contributes 0, as OBP's replay does."""

    n_events: int
    base: np.ndarray | None = None
    numerator: np.ndarray | None = None
    denominator: np.ndarray | None = None

    def value(self) -> float:
        total = 0.0 if self.base is None else float(self.base.mean())
        if self.numerator is not None:
            total += safe_ratio(
                float(self.numerator.sum()),
                self.n_events if self.denominator is None else float(self.denominator.sum()),
            )
        return total

    def influence(self) -> np.ndarray:
        """Per-event influence function psi_i with V_hat - V ~ E_n[psi_i] (delta method for ratios)."""
        psi = np.zeros(self.n_events) if self.base is None else self.base - self.base.mean()
        if self.numerator is not None:
            if self.denominator is None:
                psi = psi + (self.numerator - self.numerator.mean())
            else:
                mean_den = float(self.denominator.mean())
                ratio = safe_ratio(float(self.numerator.sum()), float(self.denominator.sum()))
                if mean_den > 0.0:
                    psi = psi + (self.numerator - ratio * self.denominator) / mean_den
        return psi


def safe_ratio(numerator: float, denominator: float) -> float:
    return 0.0 if denominator == 0.0 else numerator / denominator


@dataclass(frozen=True)
class OffPolicyEstimator(ABC):
    """Base of all estimators. ``label`` (keyword only) renames the result, e.g. to compare two
    clipping levels of one estimator in a single evaluation."""

    name: ClassVar[str]
    requires_q_hat: ClassVar[bool] = False
    uses_importance_weights: ClassVar[bool] = True
    label: str = field(default="", kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.label, str):
            raise InvalidInput(f"`label` must be a string, got {self.label!r}", field="label")

    @property
    def key(self) -> str:
        return self.label or self.name

    @abstractmethod
    def round_terms(self, vectors: EventVectors) -> RoundTerms:
        """Per-event terms whose combination is the estimate."""

    def estimate(self, vectors: EventVectors) -> float:
        self._require_q_hat(vectors)
        return self.round_terms(vectors).value()

    def clipped_share(self, vectors: EventVectors) -> float | None:
        """Share of events whose importance weight this estimator clips, shrinks to DM or drops."""
        return None

    def _require_q_hat(self, vectors: EventVectors) -> None:
        if self.requires_q_hat and not vectors.has_reward_model:
            raise InvalidInput(f"estimator `{self.key}` needs `q_hat`", field="q_hat")


def _residual(vectors: EventVectors) -> np.ndarray:
    return vectors.reward - vectors.q_logged


@dataclass(frozen=True)
class ReplayMethod(OffPolicyEstimator):
    """Replay method (RM).

    V_RM = E_n[1{pi_e(a_i|x_i) = 1} r_i] / E_n[1{pi_e(a_i|x_i) = 1}]  (0 when nothing matches).

    Inputs: reward, pscore, action (n,); target_pmf (n, n_actions).

    Unbiased only for a deterministic target (rows of ``target_pmf`` one-hot) on logs of a uniform
    logging policy; ``evaluate`` warns otherwise.
    Li, Chu, Langford, Wang, "Unbiased Offline Evaluation of Contextual-bandit-based News Article
    Recommendation Algorithms", WSDM 2011.
    """

    name: ClassVar[str] = "replay"
    uses_importance_weights: ClassVar[bool] = False

    def round_terms(self, vectors: EventVectors) -> RoundTerms:
        match = (vectors.target_prob == 1.0).astype(np.float64)
        return RoundTerms(vectors.n_events, numerator=match * vectors.reward, denominator=match)


@dataclass(frozen=True)
class InverseProbabilityWeighting(OffPolicyEstimator):
    """Inverse probability weighting (IPW), optionally clipped.

    V_IPW = E_n[min(w_i, lambda_) r_i],  w_i = pi_e(a_i|x_i) / pi_b(a_i|x_i).

    Inputs: reward, pscore, action (n,); target_pmf (n, n_actions).

    ``lambda_`` >= 0, default inf (no clipping). Strehl, Langford, Li, Kakade, "Learning from Logged
    Implicit Exploration Data", NeurIPS 2010; Dudik, Erhan, Langford, Li, "Doubly Robust Policy
    Evaluation and Optimization", Statistical Science 2014.
    """

    name: ClassVar[str] = "ipw"
    lambda_: float = np.inf

    def __post_init__(self) -> None:
        super().__post_init__()
        check.check_hyperparameter("lambda_", self.lambda_)

    def round_terms(self, vectors: EventVectors) -> RoundTerms:
        return RoundTerms(
            vectors.n_events, numerator=np.minimum(vectors.weight, self.lambda_) * vectors.reward
        )

    def clipped_share(self, vectors: EventVectors) -> float | None:
        return float(np.mean(vectors.weight > self.lambda_))


@dataclass(frozen=True)
class SelfNormalizedInverseProbabilityWeighting(OffPolicyEstimator):
    """Self-normalised IPW (SNIPW); no clipping (OBP ignores ``lambda_`` here too).

    V_SNIPW = E_n[w_i r_i] / E_n[w_i].

    Inputs: reward, pscore, action (n,); target_pmf (n, n_actions).

    Biased but consistent, bounded by the reward range, lower variance than IPW.
    Swaminathan, Joachims, "The Self-Normalized Estimator for Counterfactual Learning", NeurIPS 2015.
    """

    name: ClassVar[str] = "snipw"

    def round_terms(self, vectors: EventVectors) -> RoundTerms:
        return RoundTerms(
            vectors.n_events,
            numerator=vectors.weight * vectors.reward,
            denominator=vectors.weight,
        )


@dataclass(frozen=True)
class DirectMethod(OffPolicyEstimator):
    """Direct method (DM).

    V_DM = E_n[sum_a pi_e(a|x_i) q_hat(x_i, a)] = E_n[q_hat(x_i, pi_e)].

    Inputs: reward, pscore, action (n,); target_pmf and q_hat (n, n_actions).

    Needs ``q_hat`` (n, n_actions); as good as the reward model (its interval ignores model error).
    Beygelzimer, Langford, "The Offset Tree for Learning with Partial Labels", KDD 2009.
    """

    name: ClassVar[str] = "dm"
    requires_q_hat: ClassVar[bool] = True
    uses_importance_weights: ClassVar[bool] = False

    def round_terms(self, vectors: EventVectors) -> RoundTerms:
        self._require_q_hat(vectors)
        return RoundTerms(vectors.n_events, base=vectors.q_target)


@dataclass(frozen=True)
class DoublyRobust(OffPolicyEstimator):
    """Doubly robust (DR), optionally clipped.

    V_DR = E_n[q_hat(x_i, pi_e) + min(w_i, lambda_) (r_i - q_hat(x_i, a_i))].

    Inputs: reward, pscore, action (n,); target_pmf and q_hat (n, n_actions).

    ``lambda_`` >= 0, default inf. Unbiased when pscore is right, whatever the reward model.
    Dudik, Erhan, Langford, Li, "Doubly Robust Policy Evaluation and Optimization", 2014.
    """

    name: ClassVar[str] = "dr"
    requires_q_hat: ClassVar[bool] = True
    lambda_: float = np.inf

    def __post_init__(self) -> None:
        super().__post_init__()
        check.check_hyperparameter("lambda_", self.lambda_)

    def round_terms(self, vectors: EventVectors) -> RoundTerms:
        self._require_q_hat(vectors)
        clipped = np.minimum(vectors.weight, self.lambda_)
        return RoundTerms(
            vectors.n_events, base=vectors.q_target, numerator=clipped * _residual(vectors)
        )

    def clipped_share(self, vectors: EventVectors) -> float | None:
        return float(np.mean(vectors.weight > self.lambda_))


@dataclass(frozen=True)
class SelfNormalizedDoublyRobust(OffPolicyEstimator):
    """Self-normalised doubly robust (SNDR); no clipping (as in OBP).

    V_SNDR = E_n[q_hat(x_i, pi_e)] + E_n[w_i (r_i - q_hat(x_i, a_i))] / E_n[w_i].

    Inputs: reward, pscore, action (n,); target_pmf and q_hat (n, n_actions).

    Kallus, Uehara, "Intrinsically Efficient, Stable, and Bounded Off-Policy Evaluation for
    Reinforcement Learning", NeurIPS 2019.
    """

    name: ClassVar[str] = "sndr"
    requires_q_hat: ClassVar[bool] = True

    def round_terms(self, vectors: EventVectors) -> RoundTerms:
        self._require_q_hat(vectors)
        return RoundTerms(
            vectors.n_events,
            base=vectors.q_target,
            numerator=vectors.weight * _residual(vectors),
            denominator=vectors.weight,
        )


@dataclass(frozen=True)
class SwitchDoublyRobust(OffPolicyEstimator):
    """Switch doubly robust (Switch-DR): DR where w_i <= lambda_, DM elsewhere.

    V_SwitchDR = E_n[q_hat(x_i, pi_e) + w_i (r_i - q_hat(x_i, a_i)) 1{w_i <= lambda_}].

    Inputs: reward, pscore, action (n,); target_pmf and q_hat (n, n_actions).

    ``lambda_`` >= 0, default inf (= DR); 0 gives DM.
    Wang, Agarwal, Dudik, "Optimal and Adaptive Off-policy Evaluation in Contextual Bandits", ICML 2017.
    """

    name: ClassVar[str] = "switch_dr"
    requires_q_hat: ClassVar[bool] = True
    lambda_: float = np.inf

    def __post_init__(self) -> None:
        super().__post_init__()
        check.check_hyperparameter("lambda_", self.lambda_)

    def round_terms(self, vectors: EventVectors) -> RoundTerms:
        self._require_q_hat(vectors)
        kept = np.where(vectors.weight <= self.lambda_, vectors.weight, 0.0)
        return RoundTerms(
            vectors.n_events, base=vectors.q_target, numerator=kept * _residual(vectors)
        )

    def clipped_share(self, vectors: EventVectors) -> float | None:
        return float(np.mean(vectors.weight > self.lambda_))


@dataclass(frozen=True)
class DoublyRobustWithShrinkage(OffPolicyEstimator):
    """Doubly robust with optimistic shrinkage (DRos).

    V_DRos = E_n[q_hat(x_i, pi_e) + w_hat_i (r_i - q_hat(x_i, a_i))],
    w_hat_i = lambda_ w_i / (w_i^2 + lambda_).

    Inputs: reward, pscore, action (n,); target_pmf and q_hat (n, n_actions).

    ``lambda_`` >= 0, default 0 (= DM); inf gives DR. At lambda_ = 0 the shrunk weight is 0 even where
    w_i = 0 (OBP's formula would give 0/0 = NaN there).
    Su, Dimakopoulou, Krishnamurthy, Dudik, "Doubly Robust Off-Policy Evaluation with Shrinkage",
    ICML 2020.
    """

    name: ClassVar[str] = "dr_os"
    requires_q_hat: ClassVar[bool] = True
    lambda_: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check.check_hyperparameter("lambda_", self.lambda_)

    def shrunk_weight(self, weight: np.ndarray) -> np.ndarray:
        if np.isinf(self.lambda_):
            return weight
        if self.lambda_ == 0.0:
            return np.zeros_like(weight)
        return (self.lambda_ * weight) / (weight**2 + self.lambda_)

    def round_terms(self, vectors: EventVectors) -> RoundTerms:
        self._require_q_hat(vectors)
        shrunk = self.shrunk_weight(vectors.weight)
        return RoundTerms(
            vectors.n_events, base=vectors.q_target, numerator=shrunk * _residual(vectors)
        )

    def clipped_share(self, vectors: EventVectors) -> float | None:
        """Share of events whose weight is shrunk by more than half."""
        shrunk = self.shrunk_weight(vectors.weight)
        return float(np.mean(shrunk < 0.5 * vectors.weight))


ESTIMATORS: dict[str, type[OffPolicyEstimator]] = {
    cls.name: cls
    for cls in (
        ReplayMethod,
        InverseProbabilityWeighting,
        SelfNormalizedInverseProbabilityWeighting,
        DirectMethod,
        DoublyRobust,
        SelfNormalizedDoublyRobust,
        SwitchDoublyRobust,
        DoublyRobustWithShrinkage,
    )
}
"""Registry: estimator name -> class (instantiated with its defaults when named)."""


def resolve(spec: str | OffPolicyEstimator) -> OffPolicyEstimator:
    """A name from :data:`ESTIMATORS` (project defaults) or a configured instance."""
    if isinstance(spec, OffPolicyEstimator):
        return spec
    if isinstance(spec, str) and spec in ESTIMATORS:
        return ESTIMATORS[spec]()
    known = ", ".join(ESTIMATORS)
    raise InvalidInput(f"unknown estimator {spec!r}; known: {known}", field="estimators")
