"""The simulated world's configuration: an immutable record validated once, apart from the world's state."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput

KNOWN_FORMATS: tuple[str, ...] = ("sms", "email", "push", "in_app")
KNOWN_TIME_SLOTS: tuple[str, ...] = ("morning", "lunch", "evening")
CATEGORIES: tuple[str, ...] = ("travel", "dining", "electronics", "fashion", "groceries", "entertainment")
DISCOUNT_TYPES: tuple[str, ...] = ("dollar", "percent")
OFFER_TYPES: tuple[str, ...] = ("retention", "cross_sell", "upsell", "loyalty")

HABIT_WORLDS: tuple[str, ...] = ("segment", "individual")

MAX_CUSTOMERS = 10_000_000
MAX_OFFERS = 100_000


def _check_bool(value: object, field: str) -> None:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field} must be a bool, got {type(value).__name__}", field=field)


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
    ``habits`` picks where preferences come from: ``"segment"`` (today's world: mostly the context a
    marketer sees, with individual variation on top) or ``"individual"`` (each customer's favourite
    category, format and send slot drawn per customer, the segment only weakly informative).
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
    habits: str = "segment"

    def __post_init__(self) -> None:
        check_scalar(self.seed, "seed", int, low=0, high=2**63 - 1)
        check_scalar(self.n_customers, "n_customers", int, low=1, high=MAX_CUSTOMERS)
        check_scalar(self.n_offers, "n_offers", int, low=1, high=MAX_OFFERS)
        check_scalar(self.n_categories, "n_categories", int, low=1, high=len(CATEGORIES))
        object.__setattr__(self, "formats", _check_names(self.formats, "formats", KNOWN_FORMATS))
        object.__setattr__(self, "time_slots", _check_names(self.time_slots, "time_slots", KNOWN_TIME_SLOTS))
        _check_bool(self.fatigue, "fatigue")
        _check_bool(self.drift, "drift")
        _check_bool(self.latent_interests, "latent_interests")
        check_scalar(self.base_rate, "base_rate", low=0.0, high=0.5, low_open=True)
        check_scalar(self.latent_share, "latent_share", low=0.0, high=1.0)
        check_scalar(self.fatigue_half_life_hours, "fatigue_half_life_hours", low=0.0, high=24.0 * 365, low_open=True)
        check_scalar(self.drift_period_days, "drift_period_days", low=0.0, high=3650.0, low_open=True)
        if self.habits not in HABIT_WORLDS:
            raise InvalidInput(f"habits must be one of {list(HABIT_WORLDS)}, got {self.habits!r}", field="habits")
        check_scalar(self.requests_per_customer_per_day, "requests_per_customer_per_day", low=0.0, high=1000.0,
                     low_open=True)
