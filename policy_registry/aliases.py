"""Aliases of a campaign's versions: resolve them, move them, and promote or roll back ``champion``.

Serving follows ``champion`` (``models:/offerbandit-<c>@champion``). ``promote`` moves it behind a
gate and keeps the one it replaced under ``previous_champion`` so ``rollback`` can return to it.
Every alias move is written as who/when/why tags on the version and as an audit run in the experiment.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from types import MappingProxyType

from offerbandit.errors import InvalidInput, NotFound
from policy_registry.records import CHAMPION, PREVIOUS_CHAMPION, Gate, GateResult, PromotionResult
from policy_registry.runs import record_run
from policy_registry.store import RegistryStore
from policy_registry.validation import check_audit, check_version, validate_alias

__all__ = ["aliases_of", "move_alias", "promote", "resolve", "rollback", "set_alias"]


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def resolve(store: RegistryStore, campaign: str, alias: str) -> str | None:
    """The version an alias points to, or None (no such alias or no model for the campaign yet)."""
    validate_alias(alias)
    registered = store.registered_model(campaign)
    if registered is None:
        return None
    version = registered.aliases.get(alias)
    return str(version) if version is not None else None


def aliases_of(store: RegistryStore, campaign: str) -> Mapping[str, str]:
    """Every alias of the campaign's registered model (alias -> version); empty when none."""
    registered = store.registered_model(campaign)
    if registered is None:
        return MappingProxyType({})
    return MappingProxyType({alias: str(v) for alias, v in registered.aliases.items()})


def move_alias(store: RegistryStore, campaign: str, alias: str, version: str, *, who: str, why: str,
               action: str) -> None:
    """Point ``alias`` at ``version`` and stamp who/when/why/action on the version."""
    name = store.model_name(campaign)
    client = store.client()
    store.call("set_registered_model_alias", lambda: client.set_registered_model_alias(name, alias, version))
    store.set_version_tags(campaign, version, {
        f"{alias}.set_by": who, f"{alias}.set_at": _now_iso(), f"{alias}.why": why, f"{alias}.action": action,
    })


def _audit_run(store: RegistryStore, campaign: str, run_name: str, tags: Mapping[str, str],
               metrics: Mapping[str, float]) -> str:
    """A finished run in the experiment recording one registry action (promote, rollback, ...)."""
    all_tags = {"campaign": campaign, "registered_model": store.model_name(campaign), **tags}
    return record_run(store, run_name, all_tags, metrics)


def set_alias(store: RegistryStore, campaign: str, alias: str, version: str, *, who: str, why: str) -> str:
    """Point ``alias`` at ``version`` without a gate; recorded as tags and an audit run (its id)."""
    validate_alias(alias)
    version = check_version(version)
    check_audit(who, why)
    before = resolve(store, campaign, alias)
    store.version_record(campaign, version)  # NotFound for an unknown version
    move_alias(store, campaign, alias, version, who=who, why=why, action="set_alias")
    return _audit_run(
        store, campaign, f"set_alias {alias} -> v{version}",
        {"offerbandit.kind": "set_alias", "alias": alias, "version": version,
         "version_before": before or "", "who": who, "why": why},
        {},
    )


def promote(store: RegistryStore, campaign: str, version: str, *, gate: Gate | None, force: bool, who: str,
            why: str) -> PromotionResult:
    """Move ``champion`` to ``version`` if ``gate(champion, version)`` passes, or if ``force``.

    Without a gate the candidate passes only when there is no champion yet. The replaced champion
    is kept under ``previous_champion``. A refusal changes no alias but is still recorded.
    """
    version = check_version(version)
    check_audit(who, why)
    if not isinstance(force, bool):
        raise InvalidInput("force must be a bool", field="force")
    if gate is not None and not callable(gate):
        raise InvalidInput("gate must be callable or None", field="gate")
    store.version_record(campaign, version)
    champion = resolve(store, campaign, CHAMPION)
    if champion == version:
        return PromotionResult(
            campaign, "promote", version, champion, champion, promoted=False, forced=force,
            reason=f"v{version} is already the champion",
        )
    verdict = gate(champion, version) if gate is not None else None
    if verdict is not None and not isinstance(verdict, GateResult):
        raise InvalidInput("gate must return a GateResult", field="gate")
    if verdict is not None:
        passed, reason = verdict.passed, verdict.reason
    elif champion is None:
        passed, reason = True, "no champion yet"
    else:
        passed, reason = False, "no gate given and a champion exists (use force)"
    promoted = passed or force
    action = "promote" if passed else ("force_promote" if force else "refused")
    if promoted:
        if champion is not None:
            move_alias(store, campaign, PREVIOUS_CHAMPION, champion, who=who,
                       why=f"replaced by v{version}: {why}", action=action)
        move_alias(store, campaign, CHAMPION, version, who=who, why=why, action=action)
    else:
        store.set_version_tags(campaign, version,
                               {"promotion.refused_at": _now_iso(), "promotion.refused_why": reason})
    run_id = _audit_run(
        store, campaign, f"{action} v{version}",
        {"offerbandit.kind": "promotion", "action": action, "version": version,
         "champion_before": champion or "", "who": who, "why": why, "gate_reason": reason,
         "forced": str(force and not passed).lower()},
        verdict.as_metrics() if verdict is not None else {},
    )
    return PromotionResult(
        campaign, "promote", version, champion, version if promoted else champion,
        promoted=promoted, forced=force and not passed, reason=reason, gate=verdict, run_id=run_id,
    )


def rollback(store: RegistryStore, campaign: str, *, who: str, why: str) -> PromotionResult:
    """Return ``champion`` to ``previous_champion``; the rolled-back version becomes the previous one,
    so a second rollback undoes the first."""
    check_audit(who, why)
    previous = resolve(store, campaign, PREVIOUS_CHAMPION)
    if previous is None:
        raise NotFound(f"campaign {campaign!r} has no previous champion to roll back to")
    champion = resolve(store, campaign, CHAMPION)
    move_alias(store, campaign, CHAMPION, previous, who=who, why=why, action="rollback")
    if champion is not None and champion != previous:
        move_alias(store, campaign, PREVIOUS_CHAMPION, champion, who=who, why=f"rolled back: {why}",
                   action="rollback")
    run_id = _audit_run(
        store, campaign, f"rollback to v{previous}",
        {"offerbandit.kind": "promotion", "action": "rollback", "version": previous,
         "champion_before": champion or "", "who": who, "why": why},
        {},
    )
    return PromotionResult(
        campaign, "rollback", previous, champion, previous, promoted=True, forced=False,
        reason=f"rolled back from v{champion} to v{previous}", run_id=run_id,
    )
