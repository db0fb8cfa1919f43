"""Exploration outside the customer's history: a mixture of the policy and a novelty component.

    p = (1 - β)·p_policy + β·q_novel
    q_novel = (1 - φ)·p_policy|novel / Σ p_policy|novel + φ·floor(novel)

``novel`` are the eligible arms outside the customer's history within the horizon, over the
configured dimensions (default: the offer category); an arm is novel when at least one of its values
in those dimensions is outside the history. What the history holds is ``history_basis``: the values
*shown* (default), *responded* to, or shown at least k times (``shown_min_k``; a response settles it).
The floor φ keeps every novel arm drawable even where the policy gives it (almost) nothing; it is
uniform over the novel categories and then over each one's novel arms (``floor_spread="category"``,
the default) or uniform over the novel arms (``"arm"``). If the policy gives the novel arms no mass at
all, q_novel is the floor alone.

β = 0 when no eligible arm is novel, and then p is p_policy exactly (bitwise). β may shrink as the
history grows: β_eff = max(β_min, β·h0 / (h0 + n_contacts)) with h0 = ``shrink_half_life``.

New customers (no history): every arm is novel, so q_novel = (1 - φ)·p_policy + φ·floor and the
mixture is p_policy with a floor of β·φ: the policy's own judgement (which may already carry segment
knowledge) spreads most of the novelty mass, the floor guarantees coverage. Their novelty draws are
labelled ``explore_outside_history`` like everyone else's, and β is at its largest there.

Defaults (measured with bench/bench_exploration.py's in-process study, 8 simulated worlds, with its
purpose-built learner, not the served VW policy): φ = 0.1, because following
the policy inside the novel arms picks formats and send times the customer answers, so a first showing
of a new category is more often answered (the floor of 0.5 found fewer hidden interests); the floor
per category, because real catalogues have categories of very different sizes and a category with
many arms must not soak up the floor (in the simulator, whose categories are equal, it changes
nothing); history = shown, because with about ε·decisions novelty draws per customer, re-trying
unanswered categories (shown_min_k) or ignoring unanswered showings (responded) spends the draws on
categories already tried.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from policies.bounded import ByteLRU
from policies.history import HISTORY_DIMENSIONS, UserHistory
from policies.arm_index import arm_index
from policies.types import ArmSet

#: Tolerance on Σ p_policy = 1.
PMF_TOLERANCE = 1e-6
#: Upper bound on `NoveltyConfig.min_shown` (a value past the history's size would make nothing familiar).
MAX_MIN_SHOWN = 1_000
#: Bytes of floor weights `_floor_weights` keeps (per group codes and outside-history mask).
FLOOR_CACHE_BYTES = 4 * 1024 * 1024


#: What counts as "the customer's history" (see `NoveltyConfig`).
HISTORY_BASES: tuple[str, ...] = ("shown", "responded", "shown_min_k")
#: How the uniform floor inside the novelty component is spread (see `NoveltyConfig`).
FLOOR_SPREADS: tuple[str, ...] = ("arm", "category")


def _require_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidInput(f"{name} must be one of {choices}, got {value!r}", field=name)
    return value


@dataclass(frozen=True, slots=True)
class NoveltyConfig:
    """How much a policy explores outside each customer's history.

    ``beta``: weight of the novelty component; ``floor``: the uniform share φ inside it;
    ``dimensions``: what "outside the history" is measured over (``category``, ``format``,
    ``time_slot``, ``offer``); ``shrink_half_life``: h0 in β·h0/(h0 + n_contacts), None for a constant β;
    ``beta_min``: the lowest β shrinking may reach.

    ``history_basis``: which values are "in the history" within the horizon: ``shown`` (shown at
    least once), ``responded`` (answered positively at least once), ``shown_min_k`` (shown at least
    ``min_shown`` times, or answered positively: one unanswered showing is not yet a fair try).
    ``floor_spread``: ``arm`` spreads the floor uniformly over the novel arms; ``category`` spreads it
    uniformly over the novel arms' categories first, then over each category's novel arms (a category
    with many arms does not soak up the floor).
    """

    beta: float = 0.1
    floor: float = 0.1
    dimensions: tuple[str, ...] = ("category",)
    shrink_half_life: float | None = None
    beta_min: float = 0.0
    history_basis: str = "shown"
    min_shown: int = 1
    floor_spread: str = "category"

    def __post_init__(self) -> None:
        check_scalar(self.beta, "beta", low=0.0, high=1.0)
        check_scalar(self.floor, "floor", low=0.0, high=1.0)
        check_scalar(self.beta_min, "beta_min", low=0.0, high=1.0)
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
        if self.shrink_half_life is not None:
            check_scalar(self.shrink_half_life, "shrink_half_life", low=0.0, low_open=True)
        _require_choice(self.history_basis, "history_basis", HISTORY_BASES)
        _require_choice(self.floor_spread, "floor_spread", FLOOR_SPREADS)
        check_scalar(self.min_shown, "min_shown", int, low=1, high=MAX_MIN_SHOWN)

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
    #: what `policy_of_mixture` needs to get ``p_policy`` back from ``p``: the arms outside the history
    #: (None when ``beta`` is 0), the floor and whether it was spread per group
    outside: np.ndarray | None = None
    floor: float = 0.0
    grouped: bool = False


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _floor_weights(mask: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """The uniform floor over the novel arms: per arm, or per group (uniform over the novel arms' groups,
    then uniform over each group's novel arms). Read-only; remembered per group codes (by identity: the
    arm index's shared arrays) and mask, since a decision asks twice (the mixture, then the log row's
    check that its parameters give the policy pmf back) and most customers share a few masks."""
    if groups is None:
        return _weights(mask, None)
    key = (id(groups), mask.tobytes())
    found = _FLOORS.get(key)
    if found is not None and found[0] is groups:
        return found[1]
    weights = _weights(mask, groups)
    weights.setflags(write=False)
    _FLOORS.put(key, (groups, weights))  # holds ``groups``, so its id is not reused while cached
    return weights


def _weights(mask: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    n_novel = int(np.count_nonzero(mask))
    if groups is None:
        return np.where(mask, 1.0 / n_novel, 0.0)
    novel_groups = groups[mask]
    low, high = int(novel_groups.min()), int(novel_groups.max())
    if high - low <= 4 * novel_groups.size:  # small codes (categories): counting beats sorting
        codes = novel_groups - low
        arms_per_group = np.bincount(codes)
        per_arm, n_groups = arms_per_group[codes], np.count_nonzero(arms_per_group)
    else:
        _, inverse, counts = np.unique(novel_groups, return_inverse=True, return_counts=True)
        per_arm, n_groups = counts[inverse], len(counts)
    weights = np.zeros(mask.shape, dtype=np.float64)
    weights[mask] = 1.0 / (n_groups * per_arm)
    return weights


_FLOORS: ByteLRU[tuple[int, bytes], tuple[np.ndarray, np.ndarray]] = ByteLRU(
    FLOOR_CACHE_BYTES, lambda key, entry: 200 + len(key[1]) + entry[1].nbytes)


def novelty_mixture(p_policy: np.ndarray, outside: np.ndarray, beta_eff: float, floor: float, *,
                    groups: np.ndarray | None = None) -> Mixture:
    """Mix ``p_policy`` with the novelty component over the arms flagged in ``outside``.

    ``groups`` (integer codes, one per arm, e.g. the arm's category) spreads the floor evenly over the
    groups of the novel arms instead of over the arms themselves.
    """
    policy = np.array(p_policy, dtype=np.float64)  # a copy: the caller's array is never touched
    if policy.ndim != 1 or policy.size == 0:
        raise InvalidInput(f"p_policy must be a non-empty 1-D array, got shape {policy.shape}", field="p_policy")
    total = float(policy.sum())  # not finite if any entry is not
    if not math.isfinite(total) or policy.min() < 0 or abs(total - 1.0) > PMF_TOLERANCE:
        raise InvalidInput("p_policy must be finite, non-negative and sum to 1", field="p_policy")
    mask = np.asarray(outside)
    if mask.dtype != np.bool_ or mask.shape != policy.shape:
        raise InvalidInput(f"outside must be a boolean array of shape {policy.shape}", field="outside")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != policy.shape or groups.dtype.kind not in "iu":
            raise InvalidInput(f"groups must be an integer array of shape {policy.shape}", field="groups")
    beta = check_scalar(beta_eff, "beta_eff", low=0.0, high=1.0)
    phi = check_scalar(floor, "floor", low=0.0, high=1.0)

    if beta == 0.0 or not mask.any():
        return Mixture(p=_frozen(policy.copy()), p_policy=_frozen(policy), q_novel=_frozen(np.zeros_like(policy)),
                       beta=0.0)

    uniform = _floor_weights(mask, groups)
    restricted = np.where(mask, policy, 0.0)
    mass = restricted.sum()
    q_novel = uniform if mass <= 0.0 else (1.0 - phi) * (restricted / mass) + phi * uniform
    p = (1.0 - beta) * policy + beta * q_novel
    return Mixture(p=_frozen(p), p_policy=_frozen(policy), q_novel=_frozen(q_novel), beta=beta,
                   outside=_frozen(mask.copy()), floor=phi, grouped=groups is not None)


def policy_of_mixture(p: np.ndarray, outside: np.ndarray, beta: float, floor: float,
                      groups: np.ndarray | None = None) -> np.ndarray | None:
    """``p_policy`` recovered from the served ``p`` of `novelty_mixture` (None when ``beta`` is 1: then ``p``
    says nothing of the policy inside the history).

    Inside the history ``p = (1 - β)·π``; outside it ``p = (1 - β)·π + β·((1 - φ)·π/M + φ·u)`` with ``M``, the
    policy's mass outside, ``= 1 - Σ_inside π`` and ``u`` the floor's weights (``q = u`` when ``M`` is 0).
    A float32 ``p`` gives ``π`` within a few float32 ulps of ``p``; callers check the error they accept."""
    p = np.asarray(p, dtype=np.float64)
    mask = np.asarray(outside, dtype=bool)
    if beta >= 1.0:
        return None
    if beta <= 0.0 or not mask.any():
        return p.copy()
    policy = np.where(mask, 0.0, p / (1.0 - beta))
    mass = 1.0 - float(policy.sum())
    uniform = _floor_weights(mask, groups)
    if mass <= 0.0:
        policy[mask] = np.maximum((p[mask] - beta * uniform[mask]) / (1.0 - beta), 0.0)
    else:
        scale = (1.0 - beta) + beta * (1.0 - floor) / mass
        policy[mask] = np.maximum((p[mask] - beta * floor * uniform[mask]) / scale, 0.0)
    return policy


def _familiar(history: UserHistory, dimension: str, basis: str, min_shown: int) -> frozenset[str]:
    """The values of ``dimension`` that are in the customer's history under ``basis``."""
    if basis == "shown":
        return history.shown(dimension)
    responded = history.responded(dimension)
    if basis == "responded":
        return responded
    counts = history.shown_counts(dimension)
    return responded | {value for value, n in counts.items() if n >= min_shown}


def outside_history_mask(arm_set: ArmSet, history: UserHistory, dimensions: tuple[str, ...], *,
                         basis: str = "shown", min_shown: int = 1) -> np.ndarray:
    """True for each arm with a value, in any of ``dimensions``, outside the customer's history.

    ``basis`` and ``min_shown`` say what the history holds (see `NoveltyConfig.history_basis`)."""
    _require_choice(basis, "basis", HISTORY_BASES)
    familiar = {dim: _familiar(history, dim, basis, min_shown) for dim in dimensions}  # validates names
    index = arm_index(arm_set)
    outside = np.zeros(len(arm_set.arms), dtype=bool)
    for dim, seen in familiar.items():
        if not seen:  # nothing familiar in one dimension: every arm has a new value there
            return np.ones(len(arm_set.arms), dtype=bool)
        values, of_arm = {"category": (index.categories, index.category_of_arm),
                          "offer": (index.offers, index.offer_of_arm),
                          "format": (index.formats, index.format_of_arm)}.get(dim, (index.slots, index.slot_of_arm))
        novel = np.fromiter((value not in seen for value in values), dtype=bool, count=len(values))
        outside |= novel[of_arm]
    return outside


def category_codes(arm_set: ArmSet) -> np.ndarray:
    """An integer code per arm for its offer's category (equal codes, equal categories)."""
    return arm_index(arm_set).category_of_arm


def mix_for_history(p_policy: np.ndarray, arm_set: ArmSet, history: UserHistory, config: NoveltyConfig) -> Mixture:
    """Step 4 of a decision in one call: the novelty mixture for this customer's history."""
    outside = outside_history_mask(arm_set, history, config.dimensions, basis=config.history_basis,
                                   min_shown=config.min_shown)
    groups = category_codes(arm_set) if config.floor_spread == "category" and outside.any() else None
    return novelty_mixture(p_policy, outside, config.beta_for(history.n_contacts), config.floor, groups=groups)
