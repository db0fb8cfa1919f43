"""Exploration outside the customer's history: a mixture of the policy and a novelty component.

    p = (1 - β)·p_policy + β·q_novel
    q_novel = (1 - φ)·p_policy|novel / Σ p_policy|novel + φ·uniform(novel)

``novel`` are the eligible arms outside what the customer was *shown* within the history horizon,
over the configured dimensions (default: the offer category); an arm is novel when at least one of
its values in those dimensions was never shown. The floor φ keeps every novel arm drawable even where
the policy gives it (almost) nothing; if the policy gives the novel arms no mass at all, q_novel is
uniform over them.

β = 0 when no eligible arm is novel, and then p is p_policy exactly (bitwise). β may shrink as the
history grows: β_eff = max(β_min, β·h0 / (h0 + n_contacts)) with h0 = ``shrink_half_life``.

New customers (no history): every arm is novel, so q_novel = (1 - φ)·p_policy + φ·uniform and the
mixture is p_policy with a uniform floor of β·φ: the policy's own judgement (which may already carry
segment knowledge) spreads most of the novelty mass, the floor guarantees coverage. Their novelty
draws are labelled ``explore_outside_history`` like everyone else's, and β is at its largest there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from policies.errors import InvalidInput
from policies.history import HISTORY_DIMENSIONS, UserHistory
from policies.types import ArmSet

#: Tolerance on Σ p_policy = 1.
PMF_TOLERANCE = 1e-6


def _require_unit(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise InvalidInput(f"{name} must be a number in [0, 1], got {value!r}", field=name)
    return float(value)


@dataclass(frozen=True, slots=True)
class NoveltyConfig:
    """How much a policy explores outside each customer's history.

    ``beta``: weight of the novelty component; ``floor``: the uniform share φ inside it;
    ``dimensions``: what "outside the history" is measured over (``category``, ``format``,
    ``time_slot``, ``offer``); ``shrink_half_life``: h0 in β·h0/(h0 + n_contacts), None for a constant β;
    ``beta_min``: the lowest β shrinking may reach.
    """

    beta: float = 0.1
    floor: float = 0.5
    dimensions: tuple[str, ...] = ("category",)
    shrink_half_life: float | None = None
    beta_min: float = 0.0

    def __post_init__(self) -> None:
        _require_unit(self.beta, "beta")
        _require_unit(self.floor, "floor")
        _require_unit(self.beta_min, "beta_min")
        if self.beta_min > self.beta:
            raise InvalidInput(f"beta_min ({self.beta_min}) must not exceed beta ({self.beta})", field="beta_min")
        if isinstance(self.dimensions, str):
            raise InvalidInput("dimensions must be a sequence of names, not one string", field="dimensions")
        dims = tuple(self.dimensions)
        if not dims:
            raise InvalidInput("dimensions must name at least one dimension", field="dimensions")
        for dim in dims:
            if dim not in HISTORY_DIMENSIONS:
                raise InvalidInput(f"dimensions: unknown dimension {dim!r}; known: {HISTORY_DIMENSIONS}",
                                   field="dimensions")
        if len(set(dims)) != len(dims):
            raise InvalidInput(f"dimensions repeat a name: {dims}", field="dimensions")
        object.__setattr__(self, "dimensions", dims)
        h0 = self.shrink_half_life
        if h0 is not None and (isinstance(h0, bool) or not isinstance(h0, (int, float))
                               or not math.isfinite(h0) or h0 <= 0):
            raise InvalidInput(f"shrink_half_life must be a finite number > 0 or None, got {h0!r}",
                               field="shrink_half_life")

    def beta_for(self, n_contacts: int) -> float:
        """β_eff for a customer with ``n_contacts`` counted contacts within the horizon."""
        if self.shrink_half_life is None:
            return float(self.beta)
        h0 = float(self.shrink_half_life)
        return max(float(self.beta_min), self.beta * h0 / (h0 + max(n_contacts, 0)))


@dataclass(frozen=True, slots=True)
class Mixture:
    """The serving pmf ``p`` and its two components; ``beta`` is the novelty weight actually used.

    Arrays are float64, shape (n_arms,), read-only. ``q_novel`` is all zeros when ``beta`` is 0.
    """

    p: np.ndarray
    p_policy: np.ndarray
    q_novel: np.ndarray
    beta: float


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def novelty_mixture(p_policy: np.ndarray, outside: np.ndarray, beta_eff: float, floor: float) -> Mixture:
    """Mix ``p_policy`` with the novelty component over the arms flagged in ``outside``."""
    policy = np.array(p_policy, dtype=np.float64)  # a copy: the caller's array is never touched
    if policy.ndim != 1 or policy.size == 0:
        raise InvalidInput(f"p_policy must be a non-empty 1-D array, got shape {policy.shape}", field="p_policy")
    if not np.all(np.isfinite(policy)) or np.any(policy < 0) or abs(policy.sum() - 1.0) > PMF_TOLERANCE:
        raise InvalidInput("p_policy must be finite, non-negative and sum to 1", field="p_policy")
    mask = np.asarray(outside)
    if mask.dtype != np.bool_ or mask.shape != policy.shape:
        raise InvalidInput(f"outside must be a boolean array of shape {policy.shape}", field="outside")
    beta = _require_unit(beta_eff, "beta_eff")
    phi = _require_unit(floor, "floor")

    n_novel = int(np.count_nonzero(mask))
    if beta == 0.0 or n_novel == 0:
        return Mixture(p=_frozen(policy.copy()), p_policy=_frozen(policy), q_novel=_frozen(np.zeros_like(policy)),
                       beta=0.0)

    uniform = np.where(mask, 1.0 / n_novel, 0.0)
    restricted = np.where(mask, policy, 0.0)
    mass = restricted.sum()
    q_novel = uniform if mass <= 0.0 else (1.0 - phi) * (restricted / mass) + phi * uniform
    p = (1.0 - beta) * policy + beta * q_novel
    return Mixture(p=_frozen(p), p_policy=_frozen(policy), q_novel=_frozen(q_novel), beta=beta)


def outside_history_mask(arm_set: ArmSet, history: UserHistory, dimensions: tuple[str, ...]) -> np.ndarray:
    """True for each arm with a value, in any of ``dimensions``, the customer was never shown."""
    shown = {dim: history.shown(dim) for dim in dimensions}  # also validates the names
    arms = arm_set.arms
    if history.is_new:
        return np.ones(len(arms), dtype=bool)
    outside = np.zeros(len(arms), dtype=bool)
    for dim, seen in shown.items():
        if dim == "category":
            new_offer = {oid: offer.category not in seen for oid, offer in arm_set.offers.items()}
            column = (new_offer[arm.offer_id] for arm in arms)
        elif dim == "offer":
            column = (arm.offer_id not in seen for arm in arms)
        elif dim == "format":
            column = (arm.format not in seen for arm in arms)
        else:
            column = (arm.time_slot not in seen for arm in arms)
        outside |= np.fromiter(column, dtype=bool, count=len(arms))
    return outside


def mix_for_history(p_policy: np.ndarray, arm_set: ArmSet, history: UserHistory, config: NoveltyConfig) -> Mixture:
    """Step 4 of a decision in one call: the novelty mixture for this customer's history."""
    outside = outside_history_mask(arm_set, history, config.dimensions)
    return novelty_mixture(p_policy, outside, config.beta_for(history.n_contacts), config.floor)
