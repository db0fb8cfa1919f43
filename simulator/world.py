"""A seeded world of customers who answer offers: request stream, response probabilities, oracle.

Randomness comes from two streams derived from the seed: one builds the population, the other drives
the requests. Each request carries its own uniform draw for the response, so the stream of requests
(and the outcome of any given arm on any given request) does not depend on what a policy did: two
worlds with the same config see the same traffic whatever the policies played.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from policies.types import ArmSet, DecisionContext, JointArm
from simulator.catalog import Catalog, build_catalog
from simulator.config import CATEGORIES, DISCOUNT_TYPES, KNOWN_FORMATS, KNOWN_TIME_SLOTS, OFFER_TYPES, WorldConfig
from simulator.population import (
    DEVICES,
    DRIFT_CATEGORY_AMPLITUDE,
    DRIFT_CHANNEL_AMPLITUDE,
    HOUR_BAND_STARTS,
    HOUR_BAND_VOLUME,
    HOUR_BANDS,
    LATENT_BOOST,
    OFFER_TYPE_GIVEN_PROBLEM,
    OFFER_TYPE_GIVEN_TENURE,
    SEGMENTS,
    TENURE_BANDS,
    VALUE_TIERS,
    WEEKDAY_SLOT_GIVEN_SEGMENT,
    WEEKDAYS,
    build_population,
    tenure_band_index,
)

SECONDS_PER_DAY = 86_400.0
DAYS_PER_MONTH = 30.44
FATIGUE_PER_CONTACT = 0.45  # log-odds lost per fresh contact still in memory
FATIGUE_MEMORY = 16         # contacts remembered per customer (older ones have faded anyway)
_ARM_CACHE_SIZE = 64


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One moment a customer can be contacted. ``index`` numbers requests in the stream from 0."""

    index: int
    user_id: str
    context: Mapping[str, str]
    numeric: Mapping[str, float]
    time: float
    _customer: int = field(default=-1, repr=False, compare=False)
    _draw: float = field(default=0.5, repr=False, compare=False)  # the response's uniform draw

    def __post_init__(self) -> None:
        object.__setattr__(self, "context", MappingProxyType(dict(self.context)))
        object.__setattr__(self, "numeric", MappingProxyType(dict(self.numeric)))

    def decision_context(self, campaign: str = "default") -> DecisionContext:
        """What a policy sees. ``user_key`` is the clear simulated id (the service hashes real ids)."""
        return DecisionContext(user_key=self.user_id, context=self.context, numeric=self.numeric, campaign=campaign)


@dataclass(frozen=True)
class ReferenceValues:
    """Mean response probability per decision of four reference policies on the same requests
    (no contact history, so no fatigue): the oracle, the best single arm for everyone (mass
    marketing), a uniform random arm, and per-segment rules in hindsight (the best arm of each
    segment on these requests, what a marketer's segment table reaches at best)."""

    oracle: float
    best_single_arm: float
    uniform: float
    best_arm: JointArm
    segment_shares: Mapping[str, float]
    n: int
    per_segment_rules: float


@dataclass(frozen=True, eq=False)
class _EncodedArms:
    format: np.ndarray
    slot: np.ndarray
    category: np.ndarray
    discount: np.ndarray
    offer_type: np.ndarray
    offer: np.ndarray


class CustomerWorld:
    """Simulated customers with segment-of-one habits, answering offers with known probabilities.

    ``config.habits`` picks the world: preferences mostly from the segment (``"segment"``) or drawn per
    customer with the segment only weakly informative (``"individual"``, see :mod:`simulator.habits`)."""

    def __init__(self, config: WorldConfig) -> None:
        if not isinstance(config, WorldConfig):
            raise InvalidInput("config must be a WorldConfig", field="config")
        self._config = config
        population_seed, request_seed = np.random.SeedSequence(config.seed).spawn(2)
        self._population = build_population(config, np.random.default_rng(population_seed))
        self._request_seed = request_seed
        self._catalog = build_catalog(config)
        self._catalog_arm_set = self._catalog.arm_set()
        self._offer_index = {offer.id: i for i, offer in enumerate(self._catalog.offers)}
        self._customer_index = {uid: i for i, uid in enumerate(self._population.user_ids)}
        self._mean_gap_s = SECONDS_PER_DAY / (config.n_customers * config.requests_per_customer_per_day)
        self._fatigue_decay_per_s = math.log(2.0) / (config.fatigue_half_life_hours * 3600.0)
        self._arm_cache: dict[int, tuple[ArmSet, _EncodedArms]] = {}
        self._reference: dict[int, ReferenceValues] = {}
        self.reset()

    # ----------------------------------------------------------------- state
    def reset(self) -> None:
        """Back to the start: the same request stream again and no contact history."""
        self._rng = np.random.default_rng(self._request_seed)
        self._clock = 0.0
        self._issued = 0
        self._contacts: dict[int, list[float]] = {}

    def clone(self) -> "CustomerWorld":
        """An independent copy in the current state (same future requests, same history).

        The population and catalogue are immutable and shared; the clock, the request stream and the
        contact history are copied."""
        twin = copy.copy(self)
        twin._rng = copy.deepcopy(self._rng)
        twin._contacts = {customer: list(times) for customer, times in self._contacts.items()}
        twin._arm_cache = dict(self._arm_cache)
        twin._reference = dict(self._reference)
        return twin

    @property
    def config(self) -> WorldConfig:
        return self._config

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    @property
    def arm_set(self) -> ArmSet:
        """All catalogue arms (offer-major), the arm set the reference values are computed on."""
        return self._catalog_arm_set

    @property
    def user_ids(self) -> tuple[str, ...]:
        return self._population.user_ids

    # -------------------------------------------------------------- requests
    def next_request(self) -> SimRequest:
        """The next customer to decide for. Consumes a fixed number of draws, whatever happened before."""
        gap_u, customer_u, problem_u, response_u = self._rng.random(4)
        pop = self._population
        band = _hour_band(self._clock)
        self._clock += -math.log1p(-gap_u) * self._mean_gap_s / HOUR_BAND_VOLUME[band]
        band = _hour_band(self._clock)
        cdf = pop.activity_cdf[band]
        customer = min(int(np.searchsorted(cdf, customer_u * cdf[-1], side="right")), len(cdf) - 1)

        day = int(self._clock // SECONDS_PER_DAY)
        hour = (self._clock % SECONDS_PER_DAY) / 3600.0
        tenure = float(pop.tenure_months[customer] + self._clock / (SECONDS_PER_DAY * DAYS_PER_MONTH))
        problem = problem_u < pop.problem_rate[customer]
        context = {
            "segment": SEGMENTS[pop.segment[customer]],
            "weekday": WEEKDAYS[day % 7],
            "hour_band": HOUR_BANDS[band],
            "device": DEVICES[pop.device[customer]],
            "value_tier": VALUE_TIERS[pop.tier[customer]],
            "tenure_band": TENURE_BANDS[tenure_band_index(tenure)],
            "open_service_problem": "true" if problem else "false",
        }
        numeric = {"tenure_months": round(tenure, 2), "hour": round(hour, 3)}
        request = SimRequest(
            index=self._issued, user_id=pop.user_ids[customer], context=context, numeric=numeric,
            time=self._clock, _customer=customer, _draw=float(response_u),
        )
        self._issued += 1
        return request

    # ------------------------------------------------------------- responses
    def expected_rewards(self, request: SimRequest, arm_set: ArmSet) -> np.ndarray:
        """P(response) of each arm of ``arm_set`` for this request, in arm order (float64 in [0, 1]).

        Depends on the customer's contact history only with ``fatigue`` on, and on the clock only
        with ``drift`` on.
        """
        customer = self._customer_of(request)
        arms = self._encode(arm_set)
        return _sigmoid(self._logits(request, customer, arms))

    def respond(self, request: SimRequest, arm: JointArm | None) -> float:
        """Send ``arm`` (``None``: no contact) and return the sampled 0/1 response; remembers the contact."""
        customer = self._customer_of(request)
        if arm is None:
            return 0.0
        if not isinstance(arm, JointArm):
            raise InvalidInput("arm must be a JointArm or None", field="arm")
        if arm.offer_id not in self._offer_index:
            raise InvalidInput(f"arm names an offer outside the catalogue: {arm.offer_id!r}", field="arm")
        single = ArmSet(arms=(arm,), offers={arm.offer_id: self._catalog.offers[self._offer_index[arm.offer_id]]})
        probability = float(self.expected_rewards(request, single)[0])
        history = self._contacts.setdefault(customer, [])
        history.append(request.time)
        del history[:-FATIGUE_MEMORY]
        return 1.0 if request._draw < probability else 0.0

    def oracle_index(self, request: SimRequest, arm_set: ArmSet) -> int:
        """Index of the arm with the highest response probability (the first one on ties)."""
        return int(np.argmax(self.expected_rewards(request, arm_set)))

    def is_latent(self, user_id: str, category: str) -> bool:
        """Whether ``category`` is a latent interest of the customer: one they would like a lot but had
        never been shown before the simulation started (their segment and past point elsewhere)."""
        customer = self._customer_index.get(user_id)
        if customer is None:
            raise InvalidInput(f"unknown user_id {user_id!r}", field="user_id")
        latent = int(self._population.latent[customer])
        return latent >= 0 and CATEGORIES[latent] == category

    # -------------------------------------------------------------- reference
    def reference_values(self, n: int = 5000) -> ReferenceValues:
        """Oracle, best-single-arm, uniform and per-segment-rules values by Monte Carlo over the first ``n`` requests of a
        fresh copy of this world (same seed, no contact history), on the full catalogue arm set."""
        check_scalar(n, "n", int, low=1)
        if n not in self._reference:
            fresh = CustomerWorld(self._config)
            requests = [fresh.next_request() for _ in range(n)]
            matrix = np.stack([fresh.expected_rewards(r, fresh.arm_set) for r in requests])
            column_means = matrix.mean(axis=0)
            best = int(np.argmax(column_means))
            segments = [r.context["segment"] for r in requests]
            shares = {s: segments.count(s) / n for s in SEGMENTS}
            per_segment = per_segment_rules_rewards(matrix, np.array(segments)).mean()
            self._reference[n] = ReferenceValues(
                oracle=float(matrix.max(axis=1).mean()),
                best_single_arm=float(column_means[best]),
                uniform=float(matrix.mean()),
                best_arm=self._catalog_arm_set.arms[best],
                segment_shares=MappingProxyType(shares),
                n=n,
                per_segment_rules=float(per_segment),
            )
        return self._reference[n]

    def best_single_arm(self) -> JointArm:
        """The mass-marketing optimum: the one catalogue arm with the best mean response (reference sample)."""
        return self.reference_values().best_arm

    # --------------------------------------------------------------- internals
    def _customer_of(self, request: SimRequest) -> int:
        if not isinstance(request, SimRequest):
            raise InvalidInput("request must be a SimRequest from this world", field="request")
        customer = request._customer
        if not 0 <= customer < self._config.n_customers or self._population.user_ids[customer] != request.user_id:
            raise InvalidInput(f"request does not belong to this world: {request.user_id!r}", field="request")
        return customer

    def _logits(self, request: SimRequest, customer: int, arms: _EncodedArms) -> np.ndarray:
        pop = self._population
        context = request.context
        segment = int(pop.segment[customer])
        weekday = WEEKDAYS.index(context["weekday"])
        tenure_band = TENURE_BANDS.index(context["tenure_band"])
        category = pop.category[customer]
        channel_slot = pop.channel_slot[customer]
        if self._config.drift:
            category = category.copy()
            phase = 2 * np.pi * request.time / (self._config.drift_period_days * SECONDS_PER_DAY)
            category[:-1] += DRIFT_CATEGORY_AMPLITUDE * np.sin(phase + pop.drift_phase[customer])
            channel_slot = channel_slot + (
                DRIFT_CHANNEL_AMPLITUDE * np.sin(phase + pop.channel_drift_phase)
            )[:, None]

        offer_type_effect = np.append(OFFER_TYPE_GIVEN_TENURE[tenure_band], 0.0)
        if context["open_service_problem"] == "true":
            offer_type_effect = offer_type_effect + np.append(OFFER_TYPE_GIVEN_PROBLEM, 0.0)

        logits = (
            _logit(self._config.base_rate)
            + channel_slot[arms.format, arms.slot]
            + WEEKDAY_SLOT_GIVEN_SEGMENT[segment, weekday, arms.slot]
            + category[arms.category]
            + pop.discount[customer][arms.discount]
            + offer_type_effect[arms.offer_type]
            + pop.offer_quality[arms.offer]
        )
        latent = int(pop.latent[customer])
        if latent >= 0:
            logits = logits + LATENT_BOOST * (arms.category == latent)
        if self._config.fatigue:
            logits = logits - FATIGUE_PER_CONTACT * self._fatigue_load(customer, request.time)
        return logits

    def _fatigue_load(self, customer: int, now: float) -> float:
        """Contacts before ``now``, each weighted by how fresh it still is (half-life decay)."""
        history = self._contacts.get(customer)
        if not history:
            return 0.0
        ages = now - np.asarray(history)
        ages = ages[ages > 0]
        return float(np.exp(-self._fatigue_decay_per_s * ages).sum())

    def _encode(self, arm_set: ArmSet) -> _EncodedArms:
        if not isinstance(arm_set, ArmSet):
            raise InvalidInput("arm_set must be an ArmSet", field="arm_set")
        cached = self._arm_cache.get(id(arm_set))
        if cached is not None and cached[0] is arm_set:
            return cached[1]
        encoded = self._encode_uncached(arm_set)
        if len(self._arm_cache) >= _ARM_CACHE_SIZE:
            self._arm_cache.pop(next(iter(self._arm_cache)))
        self._arm_cache[id(arm_set)] = (arm_set, encoded)
        return encoded

    def _encode_uncached(self, arm_set: ArmSet) -> _EncodedArms:
        if len(arm_set) == 0:
            raise InvalidInput("arm_set has no arms", field="arm_set")
        names = ("format", "slot", "category", "discount", "offer_type", "offer")
        columns: dict[str, list[int]] = {name: [] for name in names}
        for arm in arm_set.arms:
            if arm.format not in KNOWN_FORMATS:
                raise InvalidInput(f"unknown format {arm.format!r}; known: {list(KNOWN_FORMATS)}", field="arm_set")
            if arm.time_slot not in KNOWN_TIME_SLOTS:
                raise InvalidInput(
                    f"unknown time slot {arm.time_slot!r}; known: {list(KNOWN_TIME_SLOTS)}", field="arm_set"
                )
            offer = arm_set.offers.get(arm.offer_id)
            if offer is None:
                raise InvalidInput(f"arm names an offer missing from the arm set: {arm.offer_id!r}", field="arm_set")
            features = offer.features
            columns["format"].append(KNOWN_FORMATS.index(arm.format))
            columns["slot"].append(KNOWN_TIME_SLOTS.index(arm.time_slot))
            # Unknown feature values point at the trailing neutral (0) entry of each preference table.
            columns["category"].append(_index_or_last(CATEGORIES, features.get("category")))
            columns["discount"].append(_index_or_last(DISCOUNT_TYPES, features.get("discount_type")))
            columns["offer_type"].append(_index_or_last(OFFER_TYPES, features.get("offer_type")))
            columns["offer"].append(self._offer_index.get(offer.id, self._config.n_offers))
        return _EncodedArms(**{k: np.asarray(v, dtype=np.intp) for k, v in columns.items()})


def per_segment_rules_rewards(matrix: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """What per-segment rules picked in hindsight get on each request: ``matrix`` (requests x arms) of expected
    rewards, ``segments`` (requests,) each request's segment; every request gets the expected reward of the arm
    with the best mean over its segment's requests (what a marketer's segment table reaches at best)."""
    rewards = np.empty(len(segments))
    for segment in np.unique(segments):
        rows = segments == segment
        rewards[rows] = matrix[rows, int(np.argmax(matrix[rows].mean(axis=0)))]
    return rewards


def _index_or_last(names: tuple[str, ...], value: str | None) -> int:
    return names.index(value) if value in names else len(names)


def _hour_band(clock_s: float) -> int:
    hour = (clock_s % SECONDS_PER_DAY) / 3600.0
    return int(np.searchsorted(HOUR_BAND_STARTS, hour, side="right") - 1)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
