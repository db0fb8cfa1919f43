"""The MLflow policy registry, the only package that imports mlflow (always lazily).

Records (:mod:`~policy_registry.records`), store access with retries (:mod:`~policy_registry.store`),
runs in the experiment (:mod:`~policy_registry.runs`), versions (:mod:`~policy_registry.versions`),
aliases with promote/rollback (:mod:`~policy_registry.aliases`), evaluation runs
(:mod:`~policy_registry.evaluations`), the :class:`PolicyRegistry` over them all, and the
:class:`RegistryWatcher` that follows the serving aliases in the background.
"""
from policy_registry.records import (
    ARTIFACT_FORMAT,
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    Gate,
    GateResult,
    Lineage,
    LoadedPolicy,
    MetricPoint,
    PolicyArtifact,
    PromotionResult,
    RegistryConfig,
)
from policy_registry.registry import PolicyRegistry
from policy_registry.store import retry_when_locked
from policy_registry.validation import validate_alias, validate_campaign
from policy_registry.versions import current_code_version
from policy_registry.watcher import RegistryWatcher, WatchedVersion, WatcherStatus, WatchProblem

__all__ = [
    "ARTIFACT_FORMAT",
    "CHALLENGER",
    "CHAMPION",
    "Gate",
    "GateResult",
    "Lineage",
    "LoadedPolicy",
    "MetricPoint",
    "PREVIOUS_CHAMPION",
    "PolicyArtifact",
    "PolicyRegistry",
    "PromotionResult",
    "RegistryConfig",
    "RegistryWatcher",
    "WatchProblem",
    "WatchedVersion",
    "WatcherStatus",
    "current_code_version",
    "retry_when_locked",
    "validate_alias",
    "validate_campaign",
]
