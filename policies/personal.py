"""A per-customer posterior over the population's scores: what *this* customer's own contacts say about each
arm's category, format and time slot, on top of what everybody taught the population model.

For one decision, with ``K`` arms, ``d`` one-hot columns (an intercept, then every category, format and slot
value of the arms and of the customer's cells) and ``J`` cells the customer was contacted in::

    logit P(response | arm a) = o_a + x_a . w,     w ~ N(0, diag(s^2)),   s = (intercept_sd, prior_sd, ...)

- ``o_a`` (shape (K,)): the population's log-odds of arm ``a``: ``l_a = logit(clip(r_a, rate_floor,
  1 - rate_floor))`` of the population model's reward estimate ``r_a``, shrunk toward their mean ``l``:
  ``o_a = l + population_weight * (l_a - l)``. A cell's offset is the mean ``o`` of the arms in it (of every arm,
  for a cell no arm of this decision is in).
- the customer's cells (``CustomerFeatures`` ``cell`` counts: shown ``n_j``, responded ``y_j``) are binomial
  observations; ``w`` is their maximum a posteriori fit by ``steps`` damped Newton steps from 0, and ``H``
  (d, d) the negative log-posterior's Hessian there (a Laplace posterior N(w, H^-1)).
- each arm's optimistic score is ``u_a = o_a + x_a . w + ucb * sqrt(x_a^T H^-1 x_a)``: a format or slot this
  customer was never tried in, in a category they answer, keeps its prior width and gets tried.
- the pmf is SquareCB's over the scores (Foster & Rakhlin 2020): with ``u*`` the best score and ``B`` the
  arms that reach it, ``p_a = 1 / (K + gamma * (u* - u_a))`` off ``B`` and the rest shared equally on ``B``.

Everything is a deterministic function of the logged customer features and the population scores, so the
logged probability is exact, and a customer's part vanishes with their log rows: nothing of them is kept.
The population model learns from the request context only (`policies/vw/policy.py`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offerbandit.checks import check_scalar
from policies.bounded import IdentityLRU
from policies.types import ArmSet, CustomerFeatures, cell_key, split_cell_key

__all__ = ["PersonalModel", "PersonalPosterior", "personal_pmf", "squarecb_pmf"]

#: Defaults, tuned on the individual-habit world's tuning seeds only (101 and 404 served through the real
#: server with bench/tune_individual.py; 101, 404, 111 and 606 in process), never on the report seeds:
#: - ``gamma`` 1e4: SquareCB close to greedy on the optimistic scores (1e3: 0.48x the oracle served, 1e4: 0.51x,
#:   3e4: 0.48x, 1e5: 0.47x, 100: 0.37x; the optimism already explores where it pays);
#: - ``rate_floor`` 0.02 and ``population_weight`` 0.3: VW's context-only rewards are a weak prior (it learns
#:   from arms picked *because* each customer liked them, so context and customer are confounded): taken at
#:   full weight from a floor of 1e-3 they cost 0.05 against no population prior at all; shrunk toward their
#:   mean they add ~0.12 (in process, mean of four seeds: 0.43x at full weight, 0.47x at none, 0.60x here;
#:   served: 0.605x and 0.599x on 101 and 404);
#: - ``ucb`` 1.0 and ``prior_sd`` 1.5 (0.5 / 0.7 / 1.5 and 1.0 / 2.0 did no better).
DEFAULT_GAMMA = 10_000.0
DEFAULT_RATE_FLOOR = 0.02
DEFAULT_POPULATION_WEIGHT = 0.3
DEFAULT_UCB = 1.0
DEFAULT_PRIOR_SD = 1.5
DEFAULT_INTERCEPT_SD = 1.0
DEFAULT_STEPS = 3


@dataclass(frozen=True, slots=True)
class PersonalPosterior:
    """The per-customer model's settings (validated once; see the module docstring for each symbol)."""

    prior_sd: float = DEFAULT_PRIOR_SD
    intercept_sd: float = DEFAULT_INTERCEPT_SD
    ucb: float = DEFAULT_UCB
    gamma: float = DEFAULT_GAMMA
    steps: int = DEFAULT_STEPS
    population_weight: float = DEFAULT_POPULATION_WEIGHT
    rate_floor: float = DEFAULT_RATE_FLOOR

    def __post_init__(self) -> None:
        check_scalar(self.prior_sd, "personal_prior_sd", low=0.0, low_open=True)
        check_scalar(self.intercept_sd, "personal_intercept_sd", low=0.0, low_open=True)
        check_scalar(self.ucb, "personal_ucb", low=0.0)
        check_scalar(self.gamma, "personal_gamma", low=0.0, low_open=True)
        check_scalar(self.steps, "personal_steps", int, low=1, high=50)
        check_scalar(self.population_weight, "personal_population_weight", low=0.0, high=1.0)
        check_scalar(self.rate_floor, "personal_rate_floor", low=0.0, high=0.5, low_open=True, high_open=True)


@dataclass(frozen=True, eq=False)
class _Layout:
    """One arm set's one-hot columns: ``index`` maps (kind, value) to a column (0 is the intercept; kinds 0,
    1, 2: category, format, slot), ``arms`` (K, 4) holds each arm's columns, intercept first, ``cell_of_arm``
    (K,) the group of arms sharing a (category, format, slot) and ``cells`` each group's `cell_key` -> (its
    columns, the group)."""

    index: dict[tuple[int, str], int]
    arms: np.ndarray
    cell_of_arm: np.ndarray
    cells: dict[str, tuple[tuple[int, int, int], int]]

    @classmethod
    def of(cls, arm_set: ArmSet) -> "_Layout":
        index: dict[tuple[int, str], int] = {}
        offers = arm_set.offers
        rows, groups = [], []
        cells: dict[str, tuple[tuple[int, int, int], int]] = {}
        for arm in arm_set.arms:
            category = offers[arm.offer_id].category
            row = (index.setdefault((0, category), 1 + len(index)), index.setdefault((1, arm.format), 1 + len(index)),
                   index.setdefault((2, arm.time_slot), 1 + len(index)))
            rows.append(row)
            groups.append(cells.setdefault(cell_key(category, arm.format, arm.time_slot), (row, len(cells)))[1])
        cell_of_arm = np.array(groups, dtype=np.intp)
        arms = np.zeros((len(rows), 4), dtype=np.intp)
        arms[:, 1:] = np.array(rows, dtype=np.intp).reshape(len(rows), 3)
        return cls(index, arms, cell_of_arm, cells)

    @property
    def nbytes(self) -> int:
        """What a cached layout holds, roughly (the cache is bounded by it): arrays, dict entries and the arm set
        the cache keeps alive as its key (~64 bytes an arm: its JointArm and the tuple's slot; the strings are
        the catalogue's)."""
        return (self.arms.nbytes + self.cell_of_arm.nbytes + 120 * (len(self.index) + len(self.cells))
                + 64 * len(self.cell_of_arm) + 200)


#: how many bytes of arm-set layouts a :class:`PersonalModel` keeps (most recently used kept)
LAYOUT_CACHE_BYTES = 4 << 20


class PersonalModel:
    """:class:`PersonalPosterior`'s pmf with the arm sets' layouts remembered (thread-safe; bounded in bytes)."""

    def __init__(self, config: PersonalPosterior, *, cache_bytes: int = LAYOUT_CACHE_BYTES) -> None:
        self.config = config
        self._layouts: IdentityLRU[ArmSet, _Layout] = IdentityLRU(cache_bytes, _Layout.of,
                                                                         lambda layout: layout.nbytes)

    def pmf(self, arm_set: ArmSet, population_rates: np.ndarray, customer: CustomerFeatures) -> np.ndarray:
        """See :func:`personal_pmf`."""
        return _pmf(self.config, self._layouts.get(arm_set), population_rates, customer)


def _objective(x: np.ndarray, offset: np.ndarray, shown: np.ndarray, responded: np.ndarray,
               precision: np.ndarray, w: np.ndarray) -> float:
    """The negative log-posterior (up to a constant) at ``w``."""
    eta = offset + x @ w
    return float(shown @ np.logaddexp(0.0, eta) - responded @ eta + 0.5 * precision @ (w * w))


def _fit(x: np.ndarray, offset: np.ndarray, shown: np.ndarray, responded: np.ndarray, precision: np.ndarray,
         steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The MAP weights (d,) and the Hessian (d, d) at them: ``steps`` Newton steps from 0, each halved until
    the log-posterior improves (a full Newton step on a logistic likelihood can overshoot and diverge)."""
    w = np.zeros(x.shape[1])
    current = _objective(x, offset, shown, responded, precision, w)
    for step in range(steps + 1):
        p = 1.0 / (1.0 + np.exp(-(offset + x @ w)))
        hessian = (x.T * (shown * p * (1.0 - p))) @ x + np.diag(precision)
        if step == steps:
            break
        gradient = x.T @ (shown * p - responded) + precision * w
        direction = np.linalg.solve(hessian, gradient)
        scale = 1.0
        for _halving in range(30):
            trial = w - scale * direction
            value = _objective(x, offset, shown, responded, precision, trial)
            if value <= current:
                w, current = trial, value
                break
            scale *= 0.5
    return w, hessian


def squarecb_pmf(scores: np.ndarray, gamma: float) -> np.ndarray:
    """SquareCB's pmf over ``scores`` (shape (K,)): ``1 / (K + gamma * gap)`` off the best, the rest on it."""
    k = len(scores)
    best = scores.max()
    gap = best - scores
    on_best = gap <= 0.0
    pmf = np.where(on_best, 0.0, 1.0 / (k + gamma * gap))
    pmf[on_best] = (1.0 - pmf.sum()) / on_best.sum()
    return pmf


def personal_pmf(config: PersonalPosterior, arm_set: ArmSet, population_rates: np.ndarray,
                 customer: CustomerFeatures) -> np.ndarray:
    """The pmf (shape (K,), float64, summing to 1, every entry > 0) for ``customer`` over ``arm_set``, given
    the population model's reward estimate of each arm (``population_rates``, shape (K,), in reward units of
    a [0, 1] range). :class:`PersonalModel` does the same with the arm set's layout remembered."""
    return _pmf(config, _Layout.of(arm_set), population_rates, customer)


def _customer_cells(layout: _Layout, customer: CustomerFeatures
                    ) -> tuple[np.ndarray, list[int], np.ndarray, np.ndarray, dict[tuple[int, str], int]]:
    """The customer's cells as columns (J, 3), each one's group of arms (-1: no arm of this decision is in
    it), shown and responded counts (J,), and the column index (the layout's, or a copy grown by values no
    arm of this decision has)."""
    index = layout.index
    rows, groups, shown, responded = [], [], [], []
    for key, (n, y) in customer.counts.get("cell", {}).items():
        known = layout.cells.get(key)
        if known is not None:
            row, group = known
        else:
            try:
                values = split_cell_key(key)
            except ValueError:
                continue  # not a cell this version writes: it says nothing about these arms
            columns = []
            for kind, value in enumerate(values):
                column = index.get((kind, value))
                if column is None:
                    if index is layout.index:
                        index = dict(index)
                    column = index[(kind, value)] = 1 + len(index)
                columns.append(column)
            row, group = (columns[0], columns[1], columns[2]), -1
        rows.append(row)
        groups.append(group)
        shown.append(max(n, y))  # a response whose contact left the horizon still counts as one contact
        responded.append(y)
    return (np.array(rows, dtype=np.intp).reshape(len(rows), 3), groups, np.array(shown, dtype=np.float64),
            np.array(responded, dtype=np.float64), index)


def _pmf(config: PersonalPosterior, layout: _Layout, population_rates: np.ndarray,
         customer: CustomerFeatures) -> np.ndarray:
    raw = np.asarray(population_rates, dtype=np.float64)
    if raw.shape != layout.cell_of_arm.shape:
        raise ValueError(f"{raw.shape[0]} population rates for {len(layout.cell_of_arm)} arms")
    # a plain clip: arms VW puts under the floor tie there, and ties share the best mass (for a cold customer
    # VW cannot tell apart, that is exploration over them; squeezing them into their order instead, with
    # gaps a hundredth of VW's, cost 0.07x the oracle on the tuning seeds in process)
    rates = np.clip(raw, config.rate_floor, 1.0 - config.rate_floor)
    offsets = np.log(rates / (1.0 - rates))
    centre = offsets.mean()
    offsets = centre + config.population_weight * (offsets - centre)
    cell_columns, groups, shown, responded, index = _customer_cells(layout, customer)
    d = 1 + len(index)
    precision = np.full(d, config.prior_sd ** -2.0)
    precision[0] = config.intercept_sd ** -2.0
    if len(cell_columns):
        # a cell's offset: the mean log-odds of this decision's arms in it (of every arm, for a cell none is in)
        group_mean = (np.bincount(layout.cell_of_arm, weights=offsets, minlength=len(layout.cells))
                      / np.bincount(layout.cell_of_arm, minlength=len(layout.cells)))
        cell_offsets = np.array([group_mean[g] if g >= 0 else centre for g in groups])
        x = np.zeros((len(cell_columns), d))
        x[:, 0] = 1.0
        np.put_along_axis(x, cell_columns, 1.0, axis=1)
        w, hessian = _fit(x, cell_offsets, shown, responded, precision, config.steps)
        covariance = np.linalg.inv(hessian)
    else:
        w, covariance = np.zeros(d), np.diag(1.0 / precision)
    columns = layout.arms  # the one-hot x_a of each arm as its 4 columns: x_a . w and x_a^T C x_a by indexing
    mean = offsets + w[columns].sum(axis=1)
    width = np.sqrt(np.maximum(covariance[columns[:, :, None], columns[:, None, :]].sum(axis=(1, 2)), 0.0))
    return squarecb_pmf(mean + config.ucb * width, config.gamma)
