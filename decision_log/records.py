"""The records that cross the log's boundary: what the request path writes, and what readers get back.

Nothing outside ``decision_log`` sees a database row; every query answers with one of these.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from offerbandit.checks import check_range, check_scalar
from offerbandit.errors import InvalidInput
from decision_log.reasons import RemovedArm
from policies.rules import RemovalCounts
from policies.types import UNIT_REWARD_RANGE, ArmSet, DecisionContext, JointArm, LearningEvent


@dataclass(frozen=True, slots=True)
class CapLimit:
    """A contact cap the log enforces when it writes a decision: at most ``max_contacts`` counted contacts of
    the customer through ``format`` (``'*'``: any format) in the ``window_s`` seconds before the decision."""

    format: str
    window_s: float
    max_contacts: int

    def applies_to(self, fmt: str | None) -> bool:
        return self.format == "*" or self.format == fmt


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """One decision exactly as it was made; the unit the request path hands to the writer.

    Compact rows (``arm_set_id`` set, see `decision_log.codec`): ``arm_set_id``/``arm_set_text`` name and hold
    the candidate product (stored once), ``eligible`` is a bitmask over it (None: all eligible), ``pmf`` float32,
    ``policy_pmf`` float32 or None (equal to ``pmf``), ``removed`` the five counts and the reasons (`reasons`).
    Old rows (``arm_set_id`` None; tests write them): ``formats_json``/``time_slots_json``, u4 indices, float64 blobs."""

    event_id: str
    campaign: str
    decided_at: float
    user_key: str
    context_json: str
    numeric_json: str
    offer_set_id: str
    offer_set_json: str
    eligible: bytes | None
    pmf: bytes
    policy_pmf: bytes | None
    chosen_index: int | None
    offer_id: str
    format: str
    time_slot: str
    probability: float
    policy_version: str
    exploration: str
    beta: float
    deferred: bool
    learn_due_at: float | None
    baseline_json: str | None
    no_contact_reason: str
    removed: str
    fingerprint: str | None = None  # hash of the canonical request (a repeat must match it)
    #: the campaign's caps that apply to the chosen arm's format: the log checks them against committed
    #: contacts inside the commit (exact across replicas) and writes a capped row as no_contact 'cap'
    caps: tuple[CapLimit, ...] = ()
    key_id: str | None = None  # which user-hash key made user_key (schema 3; filled by a later issue)
    previous_user_keys: tuple[str, ...] = ()  # the customer under older listed keys: caps count those rows too
    features_json: str | None = None  # per-customer features as used (schema 3; filled by a later issue)
    arm_set_id: str | None = None  # the compact row's arm set (content hash of `arm_set_text`)
    arm_set_text: str | None = None  # the arm set as stored once in ``arm_sets`` (`codec.arm_set_code`)
    #: schema 4 (`codec.arm_set_key`): referenced by this integer, the fingerprint binary; None: as before
    arm_set_key: int | None = None
    formats_json: str | None = None  # old rows only
    time_slots_json: str | None = None  # old rows only

    @property
    def compact(self) -> bool:
        return self.arm_set_id is not None


@dataclass(frozen=True)
class LogOptions:
    """Durability and batching of the log's writer (the server's ``[log]`` section)."""

    synchronous: str = "FULL"
    max_group: int = 512
    max_queue: int = 20000
    busy_timeout_ms: int = 5000
    wal_autocheckpoint_pages: int = 4000  # SQLite: when wal_checkpoint_seconds is 0, a commit checkpoints past this
    wal_checkpoint_seconds: float = 0.2  # SQLite: a thread of the writer checkpoints this often (0: the commits do)
    connect_timeout_s: float = 30.0  # PostgreSQL: how long the first connection is retried
    pool_size: int = 8  # PostgreSQL: readers' connections (the writer takes one of them per group)


@dataclass(frozen=True, slots=True)
class ShadowScore:
    """The challenger's pmf on one committed decision (over the same eligible arms)."""

    event_id: str
    policy_version: str
    pmf: bytes
    chosen_probability: float
    scored_at: float


def unit_range(campaign: str) -> tuple[float, float]:
    """The reward range of every campaign when none is configured: [0, 1]."""
    return UNIT_REWARD_RANGE


@dataclass(frozen=True)
class RewardDefaults:
    """What the log's readers need of each campaign's rewards: the default reward of an event whose
    window closed without one, and the campaign's ``reward_range`` (per campaign, else the fallbacks).

    Every default lies inside its campaign's range; rewards are clipped to the range wherever they are
    learned or evaluated (`clip`).
    """

    by_campaign: Mapping[str, float] = field(default_factory=dict)
    fallback: float = 0.0
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    fallback_range: tuple[float, float] = UNIT_REWARD_RANGE

    def __post_init__(self) -> None:
        values = {str(name): check_scalar(value, f"default_reward of {name}")
                  for name, value in dict(self.by_campaign).items()}
        ranges = {str(name): check_range(value, f"reward_range of {name}")
                  for name, value in dict(self.ranges).items()}
        object.__setattr__(self, "by_campaign", MappingProxyType(values))
        object.__setattr__(self, "ranges", MappingProxyType(ranges))
        object.__setattr__(self, "fallback", check_scalar(self.fallback, "fallback"))
        object.__setattr__(self, "fallback_range", check_range(self.fallback_range, "fallback_range"))
        for name in {*values, None}:
            default = self.of(name) if name is not None else self.fallback
            low, high = self.range_of(name) if name is not None else self.fallback_range
            if not low <= default <= high:
                raise InvalidInput(f"default_reward of {name or 'the fallback'} ({default!r}) lies outside its "
                                   f"reward_range [{low!r}, {high!r}]", field="default_reward")

    def of(self, campaign: str) -> float:
        return self.by_campaign.get(campaign, self.fallback)

    def range_of(self, campaign: str) -> tuple[float, float]:
        return self.ranges.get(campaign, self.fallback_range)

    def clip(self, campaign: str, value: float) -> float:
        """``value`` clipped to the campaign's reward range."""
        low, high = self.range_of(campaign)
        return min(max(float(value), low), high)


@dataclass(frozen=True)
class LogFilter:
    """Which decisions a query reads: one campaign, decided in [since, until), one policy version."""

    campaign: str | None = None
    since: float | None = None
    until: float | None = None
    policy_version: str | None = None

    def __post_init__(self) -> None:
        for name in ("campaign", "policy_version"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidInput(f"{name} must be a non-empty string or None", field=name)
        for name in ("since", "until"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_scalar(getattr(self, name), name))
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise InvalidInput(f"since ({self.since}) must be before until ({self.until})", field="since")


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """One decision row decoded: the eligible arm set in logged order, with the served pmf."""

    seq: int
    event_id: str
    campaign: str
    decided_at: float
    context: DecisionContext
    arm_set: ArmSet
    pmf: np.ndarray
    chosen: int | None
    probability: float
    policy_version: str
    exploration: str
    deferred: bool
    activated_at: float | None
    learned_at: float | None
    reward: float | None
    baseline: JointArm | None = None
    no_contact_reason: str = ""
    fingerprint: str | None = None  # None for decisions logged before fingerprints
    quarantined: bool = False  # learning it made a model unusable: never learned or replayed again
    rewarded: bool = False  # a reward arrived for it (False when ``reward`` is the default of a closed window)

    @property
    def chosen_arm(self) -> JointArm | None:
        return None if self.chosen is None else self.arm_set.arms[self.chosen]


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """Every stored field of one decision row, decoded (`DecisionLog.stored_decision`): the decision as the
    readers get it, plus what only audits and tests need. ``eligible`` indexes the candidate product
    ``ArmSet.product(offers of offer_set_id, formats, time_slots)``; ``policy_pmf`` is the served pmf where the
    compact row stored none (``policy_pmf_stored`` False: it was equal); ``removed_arms`` the candidates not
    offered, each with the first rule that removed it (`decision_log.reasons`)."""

    decision: LoggedDecision
    compact: bool
    arm_set_id: str | None
    offer_set_id: str
    formats: tuple[str, ...]
    time_slots: tuple[str, ...]
    eligible: np.ndarray
    policy_pmf: np.ndarray
    policy_pmf_stored: bool
    removed: RemovalCounts
    beta: float
    learn_due_at: float | None
    key_id: str | None
    features_json: str | None
    removed_arms: tuple[RemovedArm, ...] = ()  # every candidate with probability 0 and its first rule


@dataclass(frozen=True, slots=True)
class FinalDecision:
    """The numbers offline evaluation keeps of one decision that counts (shown, reward final)."""

    seq: int
    event_id: str
    decided_at: float
    user_key: str
    policy_version: str
    chosen: int
    probability: float
    reward: float
    pmf: np.ndarray


@dataclass(frozen=True)
class Exclusions:
    """How many decisions matching a filter do not count for evaluation, by reason."""

    no_contact: int = 0
    deferred_not_activated: int = 0
    not_final: int = 0
    holdout: int = 0

    @property
    def total(self) -> int:
        return self.no_contact + self.deferred_not_activated + self.not_final + self.holdout

    def __add__(self, other: "Exclusions") -> "Exclusions":
        return Exclusions(self.no_contact + other.no_contact,
                          self.deferred_not_activated + other.deferred_not_activated,
                          self.not_final + other.not_final, self.holdout + other.holdout)

    def reasons(self) -> tuple[str, ...]:
        """One plain sentence per non-zero reason."""
        lines = []
        if self.no_contact:
            lines.append(f"{self.no_contact} no_contact decisions (rules left no eligible arm; nothing to evaluate)")
        if self.deferred_not_activated:
            lines.append(f"{self.deferred_not_activated} deferred decisions never activated (never shown)")
        if self.not_final:
            lines.append(f"{self.not_final} decisions whose reward window is still open (no final reward yet)")
        if self.holdout:
            lines.append(f"{self.holdout} holdout decisions (the control group: they measure lift, not the policy)")
        return tuple(lines)


@dataclass(frozen=True)
class FeedbackChunk:
    """One chunk of a feedback read: the decisions that count, and how many were left out and why."""

    decisions: tuple[FinalDecision, ...]
    exclusions: Exclusions


@dataclass(frozen=True, slots=True)
class ShownDecision:
    """A logged exposure: a decision that showed an offer, from the time it was shown."""

    when: float
    seq: int
    event_id: str
    campaign: str
    policy_version: str
    user_key: str
    offer_set: str
    offer_id: str
    format: str
    time_slot: str
    exploration: str
    reward: float | None  # None until reported or learned with the default


@dataclass(frozen=True, slots=True)
class ServedOutcome:
    """A shown decision whose reward is final, as the version report reads it."""

    policy_version: str
    decided_at: float
    reward: float | None
    format: str
    time_slot: str
    exploration: str


@dataclass(frozen=True, slots=True)
class LiftOutcome:
    """One decision whose reward window closed, as lift reads it: whose, which group, what reward, and the
    version that served it when it was decided (holdout decisions carry the serving version too)."""

    user_key: str
    held_out: bool
    reward: float
    policy_version: str = ""
    decided_at: float = 0.0


@dataclass(frozen=True, slots=True)
class LiveStats:
    """The learned decisions of one version: how many, their mean reward, how many explored outside history."""

    events: int
    reward_mean: float
    outside_history: int


@dataclass(frozen=True, slots=True)
class AliasMove:
    """One move of a registry alias, recorded under the log's alias lock (``alias_moves``).

    ``kind`` is ``checkpoint`` (the live model's lineage moved on), ``promote`` or ``rollback`` (an operator).
    """

    campaign: str
    alias: str
    from_version: str | None
    to_version: str
    kind: str
    who: str
    why: str
    moved_at: float


@dataclass(frozen=True, slots=True)
class LearnedEvent:
    """An event as a policy learns it, with the ``learn_seq`` the learner gave it (the order of learning)."""

    learn_seq: int
    seq: int
    event: LearningEvent
