"""Contact rules, applied to the joint arms *before* the policy scores them.

An arm is removed for the first reason that applies, checked in this order: the offer is excluded,
the format has no consent, a frequency cap on the format is reached, the arm's send time falls in the
format's quiet hours, or a suppression rule matches the context and the offer. The arms kept stay in
their original order; `Eligibility.kept` maps them back to the original indices.

Defaults: no caps, no quiet hours, no suppressions. `OPEN_SERVICE_PROBLEM` is a ready-made suppression
a campaign can list explicitly in its config.

The history store's horizon must cover the longest cap window (`RulesConfig.longest_cap_window_s`),
or old contacts are forgotten before the cap would release them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from policies.history import UserHistory
from policies.arm_index import arm_index
from policies.types import ArmSet, DecisionContext

#: Hour of the day each named send time stands for, unless a campaign configures its own.
DEFAULT_SLOT_HOURS: Mapping[str, float] = MappingProxyType(
    {"morning": 8.0, "lunch": 12.0, "afternoon": 15.0, "evening": 19.0, "night": 23.0}
)

ANY_FORMAT = "*"
#: Hours are checked in [0, 24] (24 is midnight at the end of the day).
HOURS_PER_DAY = 24


def _require_text(value: object, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{name} must be a non-empty string, got {value!r}", field=name)


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """At most ``max_contacts`` counted contacts through ``format`` ('*': any) per ``window_s`` seconds."""

    format: str
    max_contacts: int
    window_s: float

    def __post_init__(self) -> None:
        _require_text(self.format, "format")
        check_scalar(self.max_contacts, "max_contacts", int, low=0)
        check_scalar(self.window_s, "window_s", low=0.0, low_open=True)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """No contact through ``format`` ('*': any) at hours in [start_hour, end_hour); wraps past midnight
    when ``start_hour > end_hour`` (e.g. 22 -> 7)."""

    format: str
    start_hour: float
    end_hour: float

    def __post_init__(self) -> None:
        _require_text(self.format, "format")
        start = check_scalar(self.start_hour, "start_hour", low=0, high=HOURS_PER_DAY)
        end = check_scalar(self.end_hour, "end_hour", low=0, high=HOURS_PER_DAY)
        if start % 24 == end % 24:
            raise InvalidInput(
                f"start_hour and end_hour must differ (got {self.start_hour!r} and {self.end_hour!r}); "
                "to block a format entirely use a cap with max_contacts=0 or withhold consent",
                field="end_hour",
            )

    def covers(self, hour: float) -> bool:
        start, end = self.start_hour % 24, self.end_hour % 24
        hour = hour % 24
        if start < end:
            return start <= hour < end
        return hour >= start or hour < end


@dataclass(frozen=True, slots=True)
class SuppressionRule:
    """When the context has ``context_key == context_value``, remove offers whose feature
    ``offer_feature`` is one of ``feature_values``."""

    context_key: str
    context_value: str
    offer_feature: str
    feature_values: frozenset[str]

    def __post_init__(self) -> None:
        _require_text(self.context_key, "context_key")
        _require_text(self.context_value, "context_value")
        _require_text(self.offer_feature, "offer_feature")
        if isinstance(self.feature_values, str):
            raise InvalidInput("feature_values must be a collection of strings, not one string",
                               field="feature_values")
        values = frozenset(self.feature_values)
        if not values or not all(isinstance(v, str) for v in values):
            raise InvalidInput(f"feature_values must be a non-empty set of strings, got {self.feature_values!r}",
                               field="feature_values")
        object.__setattr__(self, "feature_values", values)

    def applies_to(self, context: DecisionContext) -> bool:
        return context.context.get(self.context_key) == self.context_value


#: No cross-sell or upsell while the customer has an open service problem (opt-in: list it in a config).
OPEN_SERVICE_PROBLEM = SuppressionRule("open_service_problem", "true", "offer_type",
                                       frozenset({"cross_sell", "upsell"}))


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """A campaign's contact rules. The defaults remove nothing."""

    caps: tuple[FrequencyCap, ...] = ()
    quiet_hours: tuple[QuietHours, ...] = ()
    suppressions: tuple[SuppressionRule, ...] = ()
    slot_hours: Mapping[str, float] = field(default_factory=lambda: DEFAULT_SLOT_HOURS)

    def __post_init__(self) -> None:
        for name, kind in (("caps", FrequencyCap), ("quiet_hours", QuietHours), ("suppressions", SuppressionRule)):
            items = tuple(getattr(self, name))
            if not all(isinstance(item, kind) for item in items):
                raise InvalidInput(f"{name} must hold only {kind.__name__} items", field=name)
            object.__setattr__(self, name, items)
        if not isinstance(self.slot_hours, Mapping):
            raise InvalidInput("slot_hours must map time slot -> hour", field="slot_hours")
        hours = {}
        for slot, hour in self.slot_hours.items():
            _require_text(slot, "slot_hours")
            hours[slot] = check_scalar(hour, "slot_hours", low=0, high=HOURS_PER_DAY)
        object.__setattr__(self, "slot_hours", MappingProxyType(hours))

    @property
    def longest_cap_window_s(self) -> float:
        """The history horizon must be at least this long for the caps to hold."""
        return max((cap.window_s for cap in self.caps), default=0.0)


@dataclass(frozen=True, slots=True)
class RemovalCounts:
    """How many arms each rule removed (each arm counted once, under the first reason that applied)."""

    exclusion: int = 0
    consent: int = 0
    cap: int = 0
    quiet_hours: int = 0
    suppression: int = 0

    @property
    def total(self) -> int:
        return self.exclusion + self.consent + self.cap + self.quiet_hours + self.suppression


#: The rule names, in the order they are checked; rule code ``i + 1`` (`Eligibility`'s reason arrays) is
#: ``RULE_NAMES[i]``, and ``RemovalCounts``' fields count them in this order. Code 0: kept.
RULE_NAMES = ("excluded", "consent", "cap", "quiet_hours", "suppression")


@dataclass(frozen=True, slots=True)
class Eligibility:
    """The arms left after the rules (original order) and where they came from.

    ``kept[i]`` is the index in the original arm set of ``arm_set.arms[i]``. An empty ``arm_set`` means
    the rules left nothing: the engine makes a ``no_contact`` decision. The rules decide at two grains, and
    ``offer_reasons`` / ``pair_reasons`` keep their verdicts as rule codes (0 kept, else ``RULE_NAMES[code - 1]``)
    per offer and per (format, slot) pair of the original arm set, in `ArmIndex` order (``offers``, ``pairs``):
    an arm's first rule is its offer's ``excluded``, else its pair's rule, else its offer's ``suppression``.
    """

    arm_set: ArmSet
    kept: np.ndarray
    removed: RemovalCounts
    offer_reasons: np.ndarray | None = None
    pair_reasons: np.ndarray | None = None

    def __post_init__(self) -> None:
        kept = np.asarray(self.kept, dtype=np.int64)
        kept.setflags(write=False)
        object.__setattr__(self, "kept", kept)

    @property
    def is_empty(self) -> bool:
        return len(self.arm_set) == 0


# Reason codes, in the order they are checked (0 = kept).
_KEEP, _EXCLUSION, _CONSENT, _CAP, _QUIET, _SUPPRESSION = range(6)
_NONE_REMOVED = RemovalCounts()
_ALL_KEPT: dict[int, np.ndarray] = {}  # read-only aranges by length (shared: Eligibility never writes them)


def _all_kept(n: int) -> np.ndarray:
    kept = _ALL_KEPT.get(n)
    if kept is None:
        kept = np.arange(n, dtype=np.int64)
        kept.setflags(write=False)
        if len(_ALL_KEPT) < 64:
            _ALL_KEPT[n] = kept
    return kept


def apply_rules(
    arm_set: ArmSet,
    context: DecisionContext,
    history: UserHistory,
    now: float,
    rules: RulesConfig,
    *,
    excluded_offers: frozenset[str] = frozenset(),
    consented_formats: frozenset[str] | None = None,
) -> Eligibility:
    """Remove the arms the contact rules forbid for this customer at ``now``.

    ``consented_formats=None`` means no consent information (every format allowed); an empty set
    allows none. Quiet hours look up each arm's time slot in ``rules.slot_hours``: a slot with no hour
    there, under a quiet-hours rule for its format, is a configuration error (InvalidInput).
    """
    arms = arm_set.arms
    if (not rules.caps and not rules.quiet_hours and consented_formats is None
            and (not excluded_offers or excluded_offers.isdisjoint(arm_set.offers))
            and not any(rule.applies_to(context) for rule in rules.suppressions)):
        return Eligibility(arm_set=arm_set, kept=_all_kept(len(arms)), removed=_NONE_REMOVED)  # nothing can apply
    # Decide once per offer and per (format, slot), then look arms up: cheap for thousands of arms.
    index = arm_index(arm_set)
    offer_reason = _offer_reasons(arm_set, context, rules, excluded_offers)
    capped_formats = _capped_formats(history, now, rules)
    pair_reason = np.fromiter((_pair_reason(pair, rules, consented_formats, capped_formats) for pair in index.pairs),
                              dtype=np.int8, count=len(index.pairs))
    offer_codes = np.fromiter((offer_reason[offer_id] for offer_id in index.offers), dtype=np.int8,
                              count=len(index.offers))
    by_offer = offer_codes[index.offer_of_arm]
    by_pair = pair_reason[index.pair_of_arm]
    # First reason in check order: exclusion, then the (format, slot) reasons, then suppression.
    reasons = np.where(by_offer == _EXCLUSION, _EXCLUSION, np.where(by_pair != _KEEP, by_pair, by_offer))

    counts = np.bincount(reasons, minlength=6)
    removed = RemovalCounts(exclusion=int(counts[_EXCLUSION]), consent=int(counts[_CONSENT]), cap=int(counts[_CAP]),
                            quiet_hours=int(counts[_QUIET]), suppression=int(counts[_SUPPRESSION]))
    if removed.total == 0:  # the same arm set object: callers may cache per arm set
        return Eligibility(arm_set=arm_set, kept=np.arange(len(arms)), removed=removed)
    kept = np.flatnonzero(reasons == _KEEP)
    kept_arms = tuple(arms[i] for i in kept)
    offers = {offer_id: arm_set.offers[offer_id] for offer_id in dict.fromkeys(arm.offer_id for arm in kept_arms)}
    return Eligibility(arm_set=ArmSet(arms=kept_arms, offers=offers), kept=kept, removed=removed,
                       offer_reasons=offer_codes, pair_reasons=pair_reason)


def _offer_reasons(arm_set: ArmSet, context: DecisionContext, rules: RulesConfig,
                   excluded_offers: frozenset[str]) -> dict[str, int]:
    active = [rule for rule in rules.suppressions if rule.applies_to(context)]
    reasons = {}
    for offer_id, offer in arm_set.offers.items():
        if offer_id in excluded_offers:
            reasons[offer_id] = _EXCLUSION
        elif any(offer.features.get(rule.offer_feature) in rule.feature_values for rule in active):
            reasons[offer_id] = _SUPPRESSION
        else:
            reasons[offer_id] = _KEEP
    return reasons


def _capped_formats(history: UserHistory, now: float, rules: RulesConfig) -> frozenset[str]:
    """Formats whose cap is reached; contains '*' when a cap on all formats is reached."""
    capped = set()
    for cap in rules.caps:
        if history.contacts_since(cap.format, now - cap.window_s) >= cap.max_contacts:
            capped.add(cap.format)
    return frozenset(capped)


def _pair_reason(pair: tuple[str, str], rules: RulesConfig, consented_formats: frozenset[str] | None,
                 capped_formats: frozenset[str]) -> int:
    fmt, slot = pair
    if consented_formats is not None and fmt not in consented_formats:
        return _CONSENT
    if ANY_FORMAT in capped_formats or fmt in capped_formats:
        return _CAP
    for quiet in rules.quiet_hours:
        if quiet.format in (ANY_FORMAT, fmt):
            hour = rules.slot_hours.get(slot)
            if hour is None:
                raise InvalidInput(
                    f"time slot {slot!r} has no hour in the rules' slot_hours, so quiet hours cannot be checked",
                    field="time_slots",
                )
            if quiet.covers(hour):
                return _QUIET
    return _KEEP
