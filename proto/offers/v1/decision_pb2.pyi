from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Offer(_message.Message):
    __slots__ = ("id", "features")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    id: str
    features: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., features: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Arm(_message.Message):
    __slots__ = ("offer_id", "format", "time_slot", "probability")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    TIME_SLOT_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    format: str
    time_slot: str
    probability: float
    def __init__(self, offer_id: _Optional[str] = ..., format: _Optional[str] = ..., time_slot: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class DecideRequest(_message.Message):
    __slots__ = ("event_id", "user_id", "context", "numeric", "offers", "formats", "time_slots", "deferred", "campaign", "ranking_limit", "baseline", "excluded_offers", "consented_formats")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class NumericEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    NUMERIC_FIELD_NUMBER: _ClassVar[int]
    OFFERS_FIELD_NUMBER: _ClassVar[int]
    FORMATS_FIELD_NUMBER: _ClassVar[int]
    TIME_SLOTS_FIELD_NUMBER: _ClassVar[int]
    DEFERRED_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    RANKING_LIMIT_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_OFFERS_FIELD_NUMBER: _ClassVar[int]
    CONSENTED_FORMATS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    user_id: str
    context: _containers.ScalarMap[str, str]
    numeric: _containers.ScalarMap[str, float]
    offers: _containers.RepeatedCompositeFieldContainer[Offer]
    formats: _containers.RepeatedScalarFieldContainer[str]
    time_slots: _containers.RepeatedScalarFieldContainer[str]
    deferred: bool
    campaign: str
    ranking_limit: int
    baseline: Arm
    excluded_offers: _containers.RepeatedScalarFieldContainer[str]
    consented_formats: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, event_id: _Optional[str] = ..., user_id: _Optional[str] = ..., context: _Optional[_Mapping[str, str]] = ..., numeric: _Optional[_Mapping[str, float]] = ..., offers: _Optional[_Iterable[_Union[Offer, _Mapping]]] = ..., formats: _Optional[_Iterable[str]] = ..., time_slots: _Optional[_Iterable[str]] = ..., deferred: _Optional[bool] = ..., campaign: _Optional[str] = ..., ranking_limit: _Optional[int] = ..., baseline: _Optional[_Union[Arm, _Mapping]] = ..., excluded_offers: _Optional[_Iterable[str]] = ..., consented_formats: _Optional[_Iterable[str]] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("event_id", "offer_id", "format", "time_slot", "probability", "ranking", "policy_version", "exploration", "campaign", "no_contact_reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    TIME_SLOT_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    RANKING_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPLORATION_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    NO_CONTACT_REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    offer_id: str
    format: str
    time_slot: str
    probability: float
    ranking: _containers.RepeatedCompositeFieldContainer[Arm]
    policy_version: str
    exploration: str
    campaign: str
    no_contact_reason: str
    def __init__(self, event_id: _Optional[str] = ..., offer_id: _Optional[str] = ..., format: _Optional[str] = ..., time_slot: _Optional[str] = ..., probability: _Optional[float] = ..., ranking: _Optional[_Iterable[_Union[Arm, _Mapping]]] = ..., policy_version: _Optional[str] = ..., exploration: _Optional[str] = ..., campaign: _Optional[str] = ..., no_contact_reason: _Optional[str] = ...) -> None: ...

class DecideBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[DecideRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[DecideRequest, _Mapping]]] = ...) -> None: ...

class DecideBatchResponse(_message.Message):
    __slots__ = ("decisions",)
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ...) -> None: ...

class RewardRequest(_message.Message):
    __slots__ = ("event_id", "value", "reward_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REWARD_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    value: float
    reward_id: str
    def __init__(self, event_id: _Optional[str] = ..., value: _Optional[float] = ..., reward_id: _Optional[str] = ...) -> None: ...

class RewardAck(_message.Message):
    __slots__ = ("accepted", "duplicate", "late")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    duplicate: bool
    late: bool
    def __init__(self, accepted: _Optional[bool] = ..., duplicate: _Optional[bool] = ..., late: _Optional[bool] = ...) -> None: ...

class ActivateRequest(_message.Message):
    __slots__ = ("event_id",)
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    def __init__(self, event_id: _Optional[str] = ...) -> None: ...

class ActivateAck(_message.Message):
    __slots__ = ("activated", "already_active")
    ACTIVATED_FIELD_NUMBER: _ClassVar[int]
    ALREADY_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    activated: bool
    already_active: bool
    def __init__(self, activated: _Optional[bool] = ..., already_active: _Optional[bool] = ...) -> None: ...

class GetDecisionRequest(_message.Message):
    __slots__ = ("event_id",)
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    def __init__(self, event_id: _Optional[str] = ...) -> None: ...

class RemovedArm(_message.Message):
    __slots__ = ("arm", "rule")
    ARM_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    arm: Arm
    rule: str
    def __init__(self, arm: _Optional[_Union[Arm, _Mapping]] = ..., rule: _Optional[str] = ...) -> None: ...

class DecisionRecord(_message.Message):
    __slots__ = ("decision", "removed", "rewarded", "reward")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    REWARDED_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    removed: _containers.RepeatedCompositeFieldContainer[RemovedArm]
    rewarded: bool
    reward: float
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., removed: _Optional[_Iterable[_Union[RemovedArm, _Mapping]]] = ..., rewarded: _Optional[bool] = ..., reward: _Optional[float] = ...) -> None: ...
