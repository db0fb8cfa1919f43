"""What one customer's history looks like: the store's bounds, the records it rebuilds from and the
frozen view a decision reads (see :mod:`policies.history` for the store itself)."""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from policies.types import JointArm

__all__ = [
    "COUNTED_DIMENSIONS",
    "HISTORY_DIMENSIONS",
    "HistoryConfig",
    "HistoryRecord",
    "UserHistory",
    "check_dimension",
]

#: Dimensions over which "shown" and "responded" sets are kept (see `UserHistory.shown`).
HISTORY_DIMENSIONS: tuple[str, ...] = ("category", "format", "time_slot", "offer")
#: What is counted per value: `HISTORY_DIMENSIONS` and the joint (category, format, time slot) ``cell`` of a
#: contact (`policies.types.cell_key`), which per-customer features log and rules never read.
COUNTED_DIMENSIONS: tuple[str, ...] = HISTORY_DIMENSIONS + ("cell",)


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    """Memory bounds of the store. ``horizon_s`` must cover the longest frequency-cap window."""

    max_users: int = 1_000_000
    horizon_s: float = 90 * 24 * 3600.0
    max_entries_per_user: int = 1_000

    def __post_init__(self) -> None:
        check_scalar(self.max_users, "max_users", int, low=1)
        check_scalar(self.horizon_s, "horizon_s", low=0.0, low_open=True)
        check_scalar(self.max_entries_per_user, "max_entries_per_user", int, low=1)


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One logged decision as the store needs it to rebuild at start.

    ``when`` is the time the contact counts from (decision time, or activation time when the decision
    was deferred and activated); ``counted`` is False for a deferred decision never activated;
    ``reward`` is the (aggregated) reward if one arrived, else None, and ``reward_when`` its time
    (default: ``when``).
    """

    user_key: str
    event_id: str
    when: float
    arm: JointArm
    category: str
    counted: bool
    reward: float | None = None
    reward_when: float | None = None


@dataclass(frozen=True, slots=True)
class UserHistory:
    """A frozen view of one user's history within the horizon at ``as_of``.

    ``shown_*`` come from counted contacts; ``responded_*`` from contacts with a positive reward.
    ``contact_times`` maps each format to the sorted times of its counted contacts.
    ``shown_value_counts`` maps a dimension to how many counted contacts showed each value (dimensions
    with no contacts are left out); a dimension missing from it counts each shown value once.
    ``responded_value_counts`` likewise counts the positive responses per value (received by ``as_of``).
    """

    as_of: float
    n_contacts: int = 0
    shown_categories: frozenset[str] = frozenset()
    shown_formats: frozenset[str] = frozenset()
    shown_time_slots: frozenset[str] = frozenset()
    shown_offers: frozenset[str] = frozenset()
    responded_categories: frozenset[str] = frozenset()
    responded_formats: frozenset[str] = frozenset()
    responded_time_slots: frozenset[str] = frozenset()
    responded_offers: frozenset[str] = frozenset()
    contact_times: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    shown_value_counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    responded_value_counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "contact_times", MappingProxyType(dict(self.contact_times)))
        for name in ("shown_value_counts", "responded_value_counts"):
            counts = {check_dimension(dim, COUNTED_DIMENSIONS): MappingProxyType(dict(values))
                      for dim, values in getattr(self, name).items() if values}
            object.__setattr__(self, name, MappingProxyType(counts))

    @classmethod
    def empty(cls, as_of: float = 0.0) -> "UserHistory":
        """The history of a customer never contacted (within the horizon)."""
        return cls(as_of=as_of)

    @property
    def is_new(self) -> bool:
        return self.n_contacts == 0

    def shown(self, dimension: str) -> frozenset[str]:
        """Values of ``dimension`` (one of `HISTORY_DIMENSIONS`) shown within the horizon."""
        return getattr(self, _SHOWN_FIELD[check_dimension(dimension)])

    def shown_counts(self, dimension: str) -> Mapping[str, int]:
        """How many counted contacts within the horizon showed each value of ``dimension`` (one of
        `COUNTED_DIMENSIONS`; a history built without ``cell`` counts has none)."""
        counts = self.shown_value_counts.get(check_dimension(dimension, COUNTED_DIMENSIONS))
        if counts is None and dimension == "cell":
            return MappingProxyType({})
        if counts is None:
            return MappingProxyType(dict.fromkeys(self.shown(dimension), 1))
        return counts

    def responded_counts(self, dimension: str) -> Mapping[str, int]:
        """How many positive responses within the horizon each value of ``dimension`` got."""
        counts = self.responded_value_counts.get(check_dimension(dimension, COUNTED_DIMENSIONS))
        if counts is None and dimension == "cell":
            return MappingProxyType({})
        if counts is None:
            return MappingProxyType(dict.fromkeys(self.responded(dimension), 1))
        return counts

    def responded(self, dimension: str) -> frozenset[str]:
        """Values of ``dimension`` the customer answered positively within the horizon."""
        return getattr(self, _RESPONDED_FIELD[check_dimension(dimension)])

    def contacts_since(self, format: str, since: float) -> int:
        """Counted contacts strictly after ``since`` through ``format`` (``'*'``: any format)."""
        if format == "*":
            return sum(len(t) - bisect_right(t, since) for t in self.contact_times.values())
        times = self.contact_times.get(format, ())
        return len(times) - bisect_right(times, since)


_SHOWN_FIELD = {d: f"shown_{d}s" if d != "category" else "shown_categories" for d in HISTORY_DIMENSIONS}
_RESPONDED_FIELD = {d: f"responded_{d}s" if d != "category" else "responded_categories" for d in HISTORY_DIMENSIONS}


def check_dimension(dimension: str, known: tuple[str, ...] = HISTORY_DIMENSIONS) -> str:
    if dimension not in known:
        raise InvalidInput(f"unknown history dimension {dimension!r}; known: {known}", field="dimension")
    return dimension

