"""``PolicyRegistry``: versioned policies of every campaign in one MLflow store — publish, resolve,
load, promote, roll back, record evaluations.

One registered model per campaign (``offerbandit-<campaign>``); each version is backed by a run in
the ``offerbandit`` experiment (:mod:`policy_registry.versions`); serving follows the alias
``champion``, moved by checkpoints, ``promote`` and ``rollback`` (:mod:`policy_registry.aliases`);
evaluations are runs linked to the version (:mod:`policy_registry.evaluations`). This class only
holds the store and hands each call to the module that does that job.

MLflow is never imported at import time (tests check ``import policy_registry`` stays cheap).
"""
from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence

from offerbandit.errors import InvalidInput
from policy_registry import aliases as alias_moves
from policy_registry import evaluations, guardrail_moves, live_results, versions
from policy_registry.ledger import AliasLedger, InProcessLedger
from policy_registry.records import (
    CHAMPION,
    Gate,
    LoadedPolicy,
    MetricPoint,
    PolicyArtifact,
    PromotionResult,
    RegistryConfig,
)
from policy_registry.store import RegistryStore, sqlite_path

__all__ = ["PolicyRegistry"]


class PolicyRegistry:
    """Policy versions of every campaign in one MLflow store.

    Creating one is cheap; MLflow is imported and the store opened on first use. Failures to reach
    or write the store raise ``RegistryUnavailable``; unknown versions ``NotFound``; unusable
    artefacts ``ModelError``; bad arguments ``InvalidInput``.
    ``accepted_policy_names`` (None: any) lists the policy names this code can load.
    ``alias_ledger`` serialises and records the moves of ``champion`` (the decision log, whose
    alias lock every mover on that log shares); without one, moves are serialised within this process only.
    """

    def __init__(self, config: RegistryConfig, *, accepted_policy_names: Collection[str] | None = None,
                 alias_ledger: AliasLedger | None = None) -> None:
        if not isinstance(config, RegistryConfig):
            raise InvalidInput("config must be a RegistryConfig", field="config")
        self.config = config
        self._accepted = frozenset(accepted_policy_names) if accepted_policy_names is not None else None
        self._store = RegistryStore(config)
        self._ledger: AliasLedger = alias_ledger if alias_ledger is not None else InProcessLedger()

    def model_name(self, campaign: str) -> str:
        return self.config.model_name(campaign)

    def store_missing(self) -> bool:
        """True when the store is a local SQLite file that does not exist yet: it holds no version, so
        nobody needs to wait for it (opening it creates and migrates it, which takes seconds)."""
        path = sqlite_path(self.config.tracking_uri)
        return path is not None and not path.exists()

    def publish(self, artifact: PolicyArtifact, *, aliases: Sequence[str] = (CHAMPION,)) -> str:
        """Store a new version (run + files + registered version with lineage tags); move ``aliases``.

        Publishing moves aliases without the promotion gate (checkpoints of the live model are the
        same lineage) and leaves ``previous_champion`` alone; returns the new version number.
        """
        return versions.publish(self._store, self._ledger, artifact, aliases)

    def move_champion(self, campaign: str, version: str, *, expected: str | None, kind: str = "checkpoint",
                      who: str = "checkpoint", why: str = "published checkpoint") -> bool:
        """Compare-and-set: point ``champion`` at ``version`` only while it points at ``expected`` (None:
        while there is none); True when it moved. Checkpoints use it (parent -> checkpoint)."""
        moved = alias_moves.compare_and_set(self._store, self._ledger, campaign, expected=expected, target=version,
                                            kind=kind, who=who, why=why)
        if moved:
            alias_moves.move_stamp(self._store, campaign, version, who=who, why=why, action=kind)
        return moved

    def lineage_head(self, campaign: str, version: str) -> str:
        """The newest version descending from ``version`` (itself when it has no descendants)."""
        return alias_moves.lineage_head(self._store, campaign, version)

    def lineage_versions(self, campaign: str, version: str) -> frozenset[str]:
        """``version`` and every version descending from it."""
        return alias_moves.lineage_versions(self._store, campaign, version)

    def guardrail_rollback(self, campaign: str, *, judged: str, target: str, why: str,
                           metrics: Mapping[str, float]) -> PromotionResult | None:
        """The guardrail's rollback of the ``judged`` promote's lineage to ``target`` (None: an operator
        moved meanwhile, nothing done); see :mod:`policy_registry.guardrail_moves`."""
        return guardrail_moves.guardrail_rollback(self._store, self._ledger, campaign, judged=judged, target=target,
                                                  why=why, metrics=metrics)

    def rollback_target(self, campaign: str) -> str | None:
        """Where ``rollback`` would return ``champion`` to (None: nowhere)."""
        return alias_moves.rollback_target(self._store, self._ledger, campaign)

    def resolve(self, campaign: str, alias: str) -> str | None:
        """The version an alias points to, or None (no such alias or no model for the campaign yet)."""
        return alias_moves.resolve(self._store, campaign, alias)

    def aliases(self, campaign: str) -> Mapping[str, str]:
        """Every alias of the campaign's registered model (alias -> version); empty when none."""
        return alias_moves.aliases_of(self._store, campaign)

    def load(self, campaign: str, version: str) -> LoadedPolicy:
        """Read a version's files back and verify them against the checksums in its tags."""
        return versions.load_version(self._store, campaign, version, self._accepted)

    def load_alias(self, campaign: str, alias: str) -> LoadedPolicy | None:
        """``load`` of the version under ``alias`` (None when the alias is not set)."""
        version = self.resolve(campaign, alias)
        if version is None:
            return None
        return versions.load_version(self._store, campaign, version, self._accepted, alias=alias)

    def set_alias(self, campaign: str, alias: str, version: str, *, who: str, why: str) -> str:
        """Point ``alias`` at ``version`` without a gate; recorded as tags and an audit run (its id)."""
        return alias_moves.set_alias(self._store, self._ledger, campaign, alias, version, who=who, why=why)

    def promote(self, campaign: str, version: str, *, gate: Gate | None, force: bool = False, who: str,
                why: str) -> PromotionResult:
        """Move ``champion`` to ``version`` if ``gate(champion, version)`` passes, or if ``force``.

        Without a gate the candidate passes only when there is no champion yet. The replaced champion
        is kept under ``previous_champion``. A refusal changes no alias but is still recorded.
        """
        return alias_moves.promote(self._store, self._ledger, campaign, version, gate=gate, force=force, who=who,
                                   why=why)

    def rollback(self, campaign: str, *, who: str, why: str) -> PromotionResult:
        """Return ``champion`` to the newest version of the lineage the last promote or rollback replaced
        (across the checkpoints published since); a second rollback undoes the first."""
        return alias_moves.rollback(self._store, self._ledger, campaign, who=who, why=why)

    def log_evaluation(
        self,
        campaign: str,
        version: str,
        metrics: Mapping[str, float],
        figures: Mapping[str, str | os.PathLike[str]],
        series: Sequence[MetricPoint] = (),
    ) -> str:
        """An evaluation run linked to a version; see :func:`policy_registry.evaluations.log_evaluation`."""
        return evaluations.log_evaluation(self._store, campaign, version, metrics, figures, series)

    def log_unversioned_evaluation(self, campaign: str, policy: str, policy_kind: str,
                                   metrics: Mapping[str, float],
                                   figures: Mapping[str, str | os.PathLike[str]]) -> str:
        """An evaluation run of a policy that is no registry version (a baseline, a counterfactual)."""
        return evaluations.log_unversioned_evaluation(self._store, campaign, policy, policy_kind, metrics,
                                                      figures)

    def record_live_results(self, campaign: str, version: str, metrics: Mapping[str, float], description: str,
                            figures: Mapping[str, str | os.PathLike[str]]) -> str:
        """Metrics, figures and the description on the run that published ``version``; see
        :func:`policy_registry.live_results.record_live_results`."""
        return live_results.record_live_results(self._store, campaign, version, metrics, description, figures)
