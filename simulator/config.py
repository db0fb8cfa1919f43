"""The simulated world's configuration: an immutable record validated once, apart from the world's state."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from offerbandit.errors import InvalidInput

KNOWN_FORMATS: tuple[str, ...] = ("sms", "email", "push", "in_app")
KNOWN_TIME_SLOTS: tuple[str, ...] = ("morning", "lunch", "evening")
CATEGORIES: tuple[str, ...] = ("travel", "dining", "electronics", "fashion", "groceries", "entertainment")
DISCOUNT_TYPES: tuple[str, ...] = ("dollar", "percent")
OFFER_TYPES: tuple[str, ...] = ("retention", "cross_sell", "upsell", "loyalty")

MAX_CUSTOMERS = 10_000_000
MAX_OFFERS = 100_000


def _check_int(value: object, field: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an int, got {type(value).__name__}", field=field)
    if not low <= value <= high:
        raise InvalidInput(f"{field} must be in [{low}, {high}], got {value}", field=field)


def _check_bool(value: object, field: str) -> None:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field} must be a bool, got {type(value).__name__}", field=field)


def _check_float(value: object, field: str, low: float, high: float, *, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{field} must be a finite number, got {value!r}", field=field)
    if value > high or value < low or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise InvalidInput(f"{field} must be in {bracket}{low}, {high}], got {value}", field=field)


def _check_names(value: object, field: str, known: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInput(f"{field} must be a sequence of names, got {value!r}", field=field)
    names = tuple(value)
    if not names:
        raise InvalidInput(f"{field} must not be empty", field=field)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInput(f"{field} has unknown names {unknown}; known: {list(known)}", field=field)
    if len(set(names)) != len(names):
        raise InvalidInput(f"{field} has duplicates: {list(names)}", field=field)
    return names


@dataclass(frozen=True)
class WorldConfig:
    """How the simulated customers behave.

    ``base_rate`` is the response probability of a neutral contact (no preference for or against it);
    a contact that fits the customer's habits responds several times more often.
    ``fatigue_half_life_hours`` is how fast the memory of a contact fades; ``drift_period_days`` is the
    period of the slow drift of interests and channels (only with ``drift``).
    ``requests_per_customer_per_day`` sets the simulated clock: the mean gap between requests is
    ``86400 / (n_customers * requests_per_customer_per_day)`` seconds.
    """

    seed: int = 0
    n_customers: int = 2000
    n_offers: int = 12
    n_categories: int = 6
    formats: tuple[str, ...] = KNOWN_FORMATS
    time_slots: tuple[str, ...] = KNOWN_TIME_SLOTS
    fatigue: bool = True
    drift: bool = False
    latent_interests: bool = True
    base_rate: float = 0.005
    latent_share: float = 0.35
    fatigue_half_life_hours: float = 36.0
    drift_period_days: float = 30.0
    requests_per_customer_per_day: float = 0.5

    def __post_init__(self) -> None:
        _check_int(self.seed, "seed", 0, 2**63 - 1)
        _check_int(self.n_customers, "n_customers", 1, MAX_CUSTOMERS)
        _check_int(self.n_offers, "n_offers", 1, MAX_OFFERS)
        _check_int(self.n_categories, "n_categories", 1, len(CATEGORIES))
        object.__setattr__(self, "formats", _check_names(self.formats, "formats", KNOWN_FORMATS))
        object.__setattr__(self, "time_slots", _check_names(self.time_slots, "time_slots", KNOWN_TIME_SLOTS))
        _check_bool(self.fatigue, "fatigue")
        _check_bool(self.drift, "drift")
        _check_bool(self.latent_interests, "latent_interests")
        _check_float(self.base_rate, "base_rate", 0.0, 0.5, low_open=True)
        _check_float(self.latent_share, "latent_share", 0.0, 1.0)
        _check_float(self.fatigue_half_life_hours, "fatigue_half_life_hours", 0.0, 24.0 * 365, low_open=True)
        _check_float(self.drift_period_days, "drift_period_days", 0.0, 3650.0, low_open=True)
        _check_float(self.requests_per_customer_per_day, "requests_per_customer_per_day", 0.0, 1000.0, low_open=True)
