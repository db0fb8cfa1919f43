"""The simulated customers: who they are (the context a marketer sees) and what they like.

Habits are mostly driven by what the context shows (segment, device, value tier, tenure, weekday,
hour band, an open service problem), with individual variation on top, so a contextual policy can
learn them while a mass campaign (one arm for everyone) cannot. Every preference is an additive term
on the log-odds of a response; the world adds them up per arm.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.config import CATEGORIES, DISCOUNT_TYPES, KNOWN_FORMATS, KNOWN_TIME_SLOTS, OFFER_TYPES, WorldConfig
from simulator.habits import draw_individual_habits

SEGMENTS: tuple[str, ...] = ("commuter", "professional", "family", "student", "night_owl", "retiree")
SEGMENT_SHARES = np.array([0.22, 0.20, 0.18, 0.14, 0.12, 0.14])
DEVICES: tuple[str, ...] = ("ios", "android", "desktop")
VALUE_TIERS: tuple[str, ...] = ("low", "mid", "high")
TENURE_BANDS: tuple[str, ...] = ("new", "developing", "established")
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOUR_BANDS: tuple[str, ...] = ("night", "morning", "midday", "afternoon", "evening")
HOUR_BAND_STARTS = np.array([0.0, 6.0, 11.0, 14.0, 18.0])
# Relative request volume per hour band (quiet at night).
HOUR_BAND_VOLUME = np.array([0.3, 1.2, 1.4, 1.1, 1.2])
# The send slot a customer's most active hour band points to.
SLOT_OF_ACTIVE_BAND = ("evening", "morning", "lunch", "lunch", "evening")

DEVICE_GIVEN_SEGMENT = np.array([
    [0.45, 0.45, 0.10], [0.40, 0.30, 0.30], [0.35, 0.45, 0.20],
    [0.50, 0.45, 0.05], [0.35, 0.40, 0.25], [0.15, 0.30, 0.55],
])
TIER_GIVEN_SEGMENT = np.array([
    [0.30, 0.50, 0.20], [0.10, 0.40, 0.50], [0.30, 0.50, 0.20],
    [0.70, 0.25, 0.05], [0.35, 0.45, 0.20], [0.30, 0.45, 0.25],
])
MEAN_TENURE_MONTHS = np.array([24.0, 36.0, 40.0, 10.0, 20.0, 70.0])
ACTIVITY_GIVEN_SEGMENT = np.array([  # night, morning, midday, afternoon, evening
    [0.03, 0.40, 0.12, 0.15, 0.30],
    [0.02, 0.20, 0.35, 0.23, 0.20],
    [0.03, 0.30, 0.15, 0.22, 0.30],
    [0.12, 0.08, 0.25, 0.25, 0.30],
    [0.35, 0.05, 0.10, 0.15, 0.35],
    [0.01, 0.45, 0.25, 0.19, 0.10],
])

# Channel x send-slot habit per segment: rows sms, email, push, in_app; columns morning, lunch, evening.
# Quiet hours live here too: an evening SMS or push annoys retirees and families.
CHANNEL_SLOT_GIVEN_SEGMENT = np.array([
    [[1.6, -0.2, -0.4], [-0.3, -0.5, 0.4], [1.0, 0.0, -0.2], [-0.5, -0.3, 0.2]],    # commuter
    [[-0.4, 0.3, -0.8], [0.2, 1.4, 0.0], [-0.5, 0.4, -0.6], [-0.6, 0.2, 0.3]],      # professional
    [[0.3, 0.4, -1.2], [1.2, -0.2, 0.1], [-0.2, 0.6, -1.0], [-0.3, -0.1, 0.5]],     # family
    [[-0.8, 0.2, 0.0], [-1.0, -0.8, -0.6], [-0.5, 1.0, 0.6], [-0.6, 0.3, 1.6]],     # student
    [[-1.2, -0.5, 0.3], [-0.8, -0.2, 1.6], [-1.0, -0.3, 0.6], [-0.8, 0.0, 1.1]],    # night_owl
    [[0.4, 0.2, -1.6], [1.6, 0.6, -0.4], [-0.8, -0.6, -1.4], [-1.0, -0.8, -1.2]],   # retiree
])
CHANNEL_GIVEN_DEVICE = np.array([  # sms, email, push, in_app
    [0.0, -0.1, 0.3, 0.3], [0.1, -0.1, 0.2, 0.2], [-0.2, 0.5, -1.2, -0.6],
])
# Weekday x send slot per segment (e.g. professionals read offers at lunch on Mondays and Fridays).
WEEKDAY_SLOT_GIVEN_SEGMENT = np.zeros((len(SEGMENTS), 7, 3))
WEEKDAY_SLOT_GIVEN_SEGMENT[0, 0:5, 0] = 0.4      # commuter: weekday mornings
WEEKDAY_SLOT_GIVEN_SEGMENT[0, 5:7, 0] = -0.8
WEEKDAY_SLOT_GIVEN_SEGMENT[0, 5:7, 1] = 0.4
WEEKDAY_SLOT_GIVEN_SEGMENT[1, [0, 4], 1] = 0.9   # professional: lunch on Mon and Fri
WEEKDAY_SLOT_GIVEN_SEGMENT[1, 5:7, 1] = -0.6
WEEKDAY_SLOT_GIVEN_SEGMENT[1, 5:7, 0] = 0.3
WEEKDAY_SLOT_GIVEN_SEGMENT[2, 5:7, 2] = 0.6      # family: weekend evenings and mornings
WEEKDAY_SLOT_GIVEN_SEGMENT[2, 5:7, 0] = 0.4
WEEKDAY_SLOT_GIVEN_SEGMENT[3, 4:6, 2] = 0.6      # student: Fri/Sat evening
WEEKDAY_SLOT_GIVEN_SEGMENT[4, 4:6, 2] = 0.5      # night owl: Fri/Sat evening
WEEKDAY_SLOT_GIVEN_SEGMENT[5, 6, 0] = 0.4        # retiree: Sunday morning

CATEGORY_GIVEN_SEGMENT = np.array([  # travel, dining, electronics, fashion, groceries, entertainment
    [0.3, 0.8, 0.2, -0.2, 0.3, -0.3],
    [1.0, 0.6, 0.2, 0.1, -0.5, -0.3],
    [-0.2, 0.0, -0.3, 0.0, 1.1, 0.4],
    [-0.6, 0.3, 0.8, 0.5, -0.4, 1.0],
    [-0.3, 0.2, 0.6, -0.2, -0.4, 1.1],
    [0.9, 0.3, -0.6, -0.5, 0.6, -0.2],
])
DISCOUNT_GIVEN_TIER = np.array([[0.5, -0.2], [0.0, 0.0], [-0.3, 0.5]])  # dollar, percent
OFFER_TYPE_GIVEN_TENURE = np.array([  # retention, cross_sell, upsell, loyalty
    [-0.3, 0.0, 0.4, -0.4], [0.0, 0.4, 0.1, 0.0], [0.1, -0.1, -0.2, 0.6],
])
# An open service problem: a retention gesture helps, selling more hurts.
OFFER_TYPE_GIVEN_PROBLEM = np.array([1.3, -1.6, -1.6, -0.3])

INDIVIDUAL_CHANNEL_SD = 0.35
INDIVIDUAL_CATEGORY_SD = 0.35
INDIVIDUAL_DISCOUNT_SD = 0.3
ACTIVE_SLOT_BONUS = 0.5
LATENT_BOOST = 2.4
OFFER_QUALITY_SD = 0.25
DRIFT_CATEGORY_AMPLITUDE = 0.9
DRIFT_CHANNEL_AMPLITUDE = 0.6
ACTIVITY_CONCENTRATION = 8.0

assert CHANNEL_SLOT_GIVEN_SEGMENT.shape == (len(SEGMENTS), len(KNOWN_FORMATS), len(KNOWN_TIME_SLOTS))
assert CATEGORY_GIVEN_SEGMENT.shape == (len(SEGMENTS), len(CATEGORIES))
assert DISCOUNT_GIVEN_TIER.shape == (len(VALUE_TIERS), len(DISCOUNT_TYPES))
assert OFFER_TYPE_GIVEN_TENURE.shape == (len(TENURE_BANDS), len(OFFER_TYPES))


def tenure_band_index(months: float) -> int:
    return 0 if months < 6 else (1 if months < 24 else 2)


@dataclass(frozen=True, eq=False)
class Population:
    """Per-customer attributes and preferences as arrays indexed by customer number.

    Preference arrays carry one extra trailing entry of 0 where an arm may name something unknown
    (a category, discount type or offer outside the catalogue), so lookups never branch.
    """

    user_ids: tuple[str, ...]
    segment: np.ndarray          # (n,) index into SEGMENTS
    device: np.ndarray           # (n,) index into DEVICES
    tier: np.ndarray             # (n,) index into VALUE_TIERS
    tenure_months: np.ndarray    # (n,) at the start of the simulation
    problem_rate: np.ndarray     # (n,) chance that a request finds an open service problem
    activity_cdf: np.ndarray     # (bands, n) cumulative request weights of customers per hour band
    channel_slot: np.ndarray     # (n, formats, slots) log-odds term
    category: np.ndarray         # (n, categories + 1)
    discount: np.ndarray         # (n, discount types + 1)
    latent: np.ndarray           # (n,) category index of a latent interest, -1 for none
    drift_phase: np.ndarray      # (n, categories) phase of the slow drift of interests
    channel_drift_phase: np.ndarray  # (formats,) phase of the population-wide channel drift
    offer_quality: np.ndarray    # (n_offers + 1,)


def build_population(config: WorldConfig, rng: np.random.Generator) -> Population:
    n = config.n_customers
    n_cat = config.n_categories
    segment = rng.choice(len(SEGMENTS), size=n, p=SEGMENT_SHARES)
    device = _choose_rows(rng, DEVICE_GIVEN_SEGMENT[segment])
    tier = _choose_rows(rng, TIER_GIVEN_SEGMENT[segment])
    tenure_months = rng.exponential(MEAN_TENURE_MONTHS[segment])
    problem_rate = rng.beta(1.0, 11.0, size=n)

    # Individual activity profiles around the segment's (a Dirichlet draw per customer).
    activity = rng.gamma(ACTIVITY_CONCENTRATION * ACTIVITY_GIVEN_SEGMENT[segment] + 1e-3)
    activity /= activity.sum(axis=1, keepdims=True)
    activity_cdf = np.cumsum(activity.T, axis=1)

    channel_slot = (
        CHANNEL_SLOT_GIVEN_SEGMENT[segment]
        + CHANNEL_GIVEN_DEVICE[device][:, :, None]
        + rng.normal(0.0, INDIVIDUAL_CHANNEL_SD, size=(n, len(KNOWN_FORMATS), len(KNOWN_TIME_SLOTS)))
    )
    active_slot = np.array([KNOWN_TIME_SLOTS.index(SLOT_OF_ACTIVE_BAND[b]) for b in range(len(HOUR_BANDS))])
    channel_slot[np.arange(n), :, active_slot[activity.argmax(axis=1)]] += ACTIVE_SLOT_BONUS

    category = np.zeros((n, len(CATEGORIES) + 1))
    category[:, :n_cat] = CATEGORY_GIVEN_SEGMENT[segment][:, :n_cat] + rng.normal(
        0.0, INDIVIDUAL_CATEGORY_SD, size=(n, n_cat)
    )
    latent = _draw_latent(config, rng, category[:, :n_cat])

    discount = np.zeros((n, len(DISCOUNT_TYPES) + 1))
    discount[:, :2] = DISCOUNT_GIVEN_TIER[tier]
    shift = rng.normal(0.0, INDIVIDUAL_DISCOUNT_SD, size=n)
    discount[:, 0] += shift
    discount[:, 1] -= shift

    drift_phase = rng.uniform(0.0, 2 * np.pi, size=(n, len(CATEGORIES)))
    channel_drift_phase = rng.uniform(0.0, 2 * np.pi, size=len(KNOWN_FORMATS))
    offer_quality = np.append(rng.normal(0.0, OFFER_QUALITY_SD, size=config.n_offers), 0.0)
    if config.habits == "individual":
        # Drawn last, from the same stream: the segment world's draws above are untouched.
        habits = draw_individual_habits(config, rng, channel_slot, category)
        channel_slot, category = habits.channel_slot, habits.category
        latent = _draw_latent(config, rng, category[:, :n_cat])

    width = max(len(str(max(n - 1, 0))), 5)
    return Population(
        user_ids=tuple(f"u{i:0{width}d}" for i in range(n)),
        segment=segment,
        device=device,
        tier=tier,
        tenure_months=tenure_months,
        problem_rate=problem_rate,
        activity_cdf=activity_cdf,
        channel_slot=channel_slot,
        category=category,
        discount=discount,
        latent=latent,
        drift_phase=drift_phase,
        channel_drift_phase=channel_drift_phase,
        offer_quality=offer_quality,
    )


def _choose_rows(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probabilities``."""
    u = rng.random(len(probabilities))
    return (u[:, None] > np.cumsum(probabilities, axis=1)[:, :-1]).sum(axis=1)


def _draw_latent(config: WorldConfig, rng: np.random.Generator, interest: np.ndarray) -> np.ndarray:
    """A latent interest hides in one of the categories the customer seemed least interested in, so
    nothing in their past (or their segment) points to it."""
    n, n_cat = interest.shape
    has_latent = rng.random(n) < config.latent_share
    pick = rng.integers(0, max(n_cat // 2, 1), size=n)
    if not config.latent_interests or n_cat < 2:
        return np.full(n, -1)
    least_liked_first = np.argsort(interest, axis=1, kind="stable")
    return np.where(has_latent, least_liked_first[np.arange(n), pick], -1)
