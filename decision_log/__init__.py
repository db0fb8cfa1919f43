"""The decision log: the only place with SQL. Callers hold one `DecisionLog` (from `open_log`), which
owns the writer, the readers, the offer-set cache and `close`; reads answer with records.

Modules: `records` (what crosses the boundary), `counting` (which rows count), `codec` (column
encodings: the compact row and the old one), `decoder` (rows of both formats back into records), `backend`
(the seam a storage engine implements), `database` (`DecisionLog`, `open_log`), `export` (DSJSON), `caps` (caps decided inside the commit),
`reasons` (which rule removed each arm, kept compactly in ``removed``), `reward_calls` (an event's stored rewards),
`dialect` (what differs between SQLite and PostgreSQL), `sqlite/` (the SQLite backend: schema and
migrations, the group-committing writer, named queries, reward operations), `postgres/` (the shared
PostgreSQL backend).
"""
from decision_log.backend import LearnerLock, LogBackend
from decision_log.codec import (arm_set_code, arm_set_key, as_stored, eligible_to_mask, encode_offers, indices_to_blob,
                                pmf32_to_blob, pmf_to_blob, policy_pmf_blob, removed_text, values_text)
from decision_log.database import DecisionLog, open_log
from decision_log.decoder import learning_event
from decision_log.export import export_dsjson
from decision_log.reasons import RULES, RemovedArm
from decision_log.reward_calls import RewardCall
from decision_log.records import (
    AliasMove,
    CapLimit,
    DecisionRow,
    Exclusions,
    FeedbackChunk,
    FinalDecision,
    LearnedEvent,
    LiftOutcome,
    LiveStats,
    LogFilter,
    LoggedDecision,
    LogOptions,
    RewardDefaults,
    ServedOutcome,
    ShadowScore,
    ShownDecision,
    StoredDecision,
)
from decision_log.write_outcomes import ActivationOutcome, InsertOutcome, RewardOutcome
from decision_log.sqlite.backend import LOG_FILE, log_path
from decision_log.sqlite.schema import SCHEMA_VERSION

__all__ = [
    "ActivationOutcome",
    "AliasMove",
    "CapLimit",
    "DecisionLog",
    "DecisionRow",
    "Exclusions",
    "FeedbackChunk",
    "FinalDecision",
    "InsertOutcome",
    "LOG_FILE",
    "LearnedEvent",
    "LearnerLock",
    "LiftOutcome",
    "LiveStats",
    "LogBackend",
    "LogFilter",
    "LogOptions",
    "LoggedDecision",
    "RULES",
    "RemovedArm",
    "RewardCall",
    "RewardDefaults",
    "RewardOutcome",
    "SCHEMA_VERSION",
    "ServedOutcome",
    "ShadowScore",
    "ShownDecision",
    "StoredDecision",
    "arm_set_code",
    "arm_set_key",
    "as_stored",
    "eligible_to_mask",
    "encode_offers",
    "export_dsjson",
    "indices_to_blob",
    "learning_event",
    "log_path",
    "open_log",
    "pmf32_to_blob",
    "pmf_to_blob",
    "policy_pmf_blob",
    "removed_text",
    "values_text",
]
