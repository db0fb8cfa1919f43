from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class EraseCustomerRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ErasureCounts(_message.Message):
    __slots__ = ("decisions", "rewards", "shadow_scores", "history_entries")
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    REWARDS_FIELD_NUMBER: _ClassVar[int]
    SHADOW_SCORES_FIELD_NUMBER: _ClassVar[int]
    HISTORY_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    decisions: int
    rewards: int
    shadow_scores: int
    history_entries: int
    def __init__(self, decisions: _Optional[int] = ..., rewards: _Optional[int] = ..., shadow_scores: _Optional[int] = ..., history_entries: _Optional[int] = ...) -> None: ...
