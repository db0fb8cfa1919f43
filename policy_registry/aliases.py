"""Aliases of a campaign's versions: resolve them, move them, and promote or roll back ``champion``.

Serving follows ``champion`` (``models:/offerbandit-<c>@champion``). Every move of ``champion`` is a
compare-and-set under the ledger's lock (the decision log's write lock in the server and the CLI):
read the alias, compare it with the version the mover expects, set it, re-read it, record the move.
A checkpoint moves it from its parent to itself only while it still points at the parent; ``promote``
moves it behind a gate from the champion the gate judged; ``rollback`` returns to the newest version
of the lineage that the last operator move (promote or rollback) replaced, so it works across the
checkpoints published since. The replaced champion is also kept under ``previous_champion``.
Every operator move is written as who/when/why tags on the version and as an audit run in the experiment.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from types import MappingProxyType

from offerbandit.errors import AliasMoved, InvalidInput, NotFound, RegistryUnavailable
from policy_registry.ledger import OPERATOR_MOVES, AliasLedger
from policy_registry.records import CHAMPION, PREVIOUS_CHAMPION, Gate, GateResult, PromotionResult
from policy_registry.runs import record_run
from policy_registry.store import RegistryStore
from policy_registry.validation import check_audit, check_version, validate_alias

__all__ = ["aliases_of", "compare_and_set", "lineage_head", "lineage_versions", "move_alias", "move_alias_recorded",
           "move_stamp", "promote", "resolve", "rollback", "rollback_target", "set_alias"]

_PROMOTE_ATTEMPTS = 3


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


def move_alias_recorded(store: RegistryStore, ledger: AliasLedger, campaign: str, alias: str, version: str, *,
                        who: str, why: str, action: str) -> str | None:
    """:func:`move_alias` under the ledger's lock, recorded there (kind ``set_alias``): followers that watch
    the log's alias moves see it at their next poll. Returns the version the alias pointed at before."""
    before: list[str | None] = [None]

    def move() -> tuple[str | None, str]:
        before[0] = resolve(store, campaign, alias)
        move_alias(store, campaign, alias, version, who=who, why=why, action=action)
        return before[0], version

    ledger.alias_move(campaign, alias, "set_alias", who=who, why=why, move=move)
    return before[0]


def set_alias(store: RegistryStore, ledger: AliasLedger, campaign: str, alias: str, version: str, *, who: str,
              why: str) -> str:
    """Point ``alias`` at ``version`` without a gate; recorded as tags, a ledger move and an audit run (its id)."""
    validate_alias(alias)
    version = check_version(version)
    check_audit(who, why)
    store.version_record(campaign, version)  # NotFound for an unknown version
    before = move_alias_recorded(store, ledger, campaign, alias, version, who=who, why=why, action="set_alias")
    return _audit_run(
        store, campaign, f"set_alias {alias} -> v{version}",
        {"offerbandit.kind": "set_alias", "alias": alias, "version": version,
         "version_before": before or "", "who": who, "why": why},
        {},
    )


def compare_and_set(store: RegistryStore, ledger: AliasLedger, campaign: str, *, expected: str | None, target: str,
                    kind: str, who: str, why: str, previous: bool = False) -> bool:
    """Move ``champion`` to ``target`` only if it points at ``expected`` (None: no champion), under the
    ledger's lock; True when it moved. ``previous`` also points ``previous_champion`` at the replaced one."""
    name = store.model_name(campaign)
    client = store.client()

    def move() -> tuple[str | None, str] | None:
        before = resolve(store, campaign, CHAMPION)
        if before != expected or before == target:
            return None
        if previous and before is not None:
            store.call("set_registered_model_alias",
                       lambda: client.set_registered_model_alias(name, PREVIOUS_CHAMPION, before))
        store.call("set_registered_model_alias", lambda: client.set_registered_model_alias(name, CHAMPION, target))
        after = resolve(store, campaign, CHAMPION)
        if after != target:
            raise RegistryUnavailable(f"campaign {campaign!r}: champion is v{after} right after it was set to "
                                      f"v{target} (a writer outside the lock moved it)")
        return before, target

    moved = ledger.alias_move(campaign, CHAMPION, kind, who=who, why=why, move=move)
    return moved is not None


def _stamp(store: RegistryStore, campaign: str, alias: str, version: str, *, who: str, why: str,
           action: str) -> None:
    store.set_version_tags(campaign, version, {
        f"{alias}.set_by": who, f"{alias}.set_at": _now_iso(), f"{alias}.why": why, f"{alias}.action": action,
    })


def move_stamp(store: RegistryStore, campaign: str, version: str, *, who: str, why: str, action: str) -> None:
    """Who/when/why/action of a ``champion`` move, as tags on the version it moved to."""
    _stamp(store, campaign, CHAMPION, version, who=who, why=why, action=action)


def lineage_versions(store: RegistryStore, campaign: str, version: str) -> frozenset[str]:
    """``version`` and every version descending from it (through ``parent_version`` tags)."""
    name = store.model_name(campaign)
    client = store.client()
    found = store.call("search_model_versions", lambda: client.search_model_versions(f"name = '{name}'"))
    children: dict[str, list[str]] = {}
    for record in found:
        parent = dict(record.tags).get("parent_version")
        if parent:
            children.setdefault(parent, []).append(str(record.version))
    lineage, todo = {str(version)}, [str(version)]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in lineage:
                lineage.add(child)
                todo.append(child)
    return frozenset(lineage)


def lineage_head(store: RegistryStore, campaign: str, version: str) -> str:
    """The newest version descending from ``version`` (through ``parent_version`` tags), or itself."""
    return str(max(int(v) for v in lineage_versions(store, campaign, version)))


def promote(store: RegistryStore, ledger: AliasLedger, campaign: str, version: str, *, gate: Gate | None,
            force: bool, who: str, why: str) -> PromotionResult:
    """Move ``champion`` to ``version`` if ``gate(champion, version)`` passes, or if ``force``.

    Without a gate the candidate passes only when there is no champion yet. The move is a
    compare-and-set from the champion the gate judged: when a checkpoint moved it meanwhile, the gate
    is asked again (a few times, then AliasMoved). The replaced champion is kept under
    ``previous_champion``. A refusal changes no alias but is still recorded.
    """
    version = check_version(version)
    check_audit(who, why)
    if not isinstance(force, bool):
        raise InvalidInput("force must be a bool", field="force")
    if gate is not None and not callable(gate):
        raise InvalidInput("gate must be callable or None", field="gate")
    store.version_record(campaign, version)
    for _ in range(_PROMOTE_ATTEMPTS):
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
        if promoted and not compare_and_set(store, ledger, campaign, expected=champion, target=version,
                                            kind="promote", who=who, why=why, previous=True):
            continue  # the champion moved since the gate judged it: judge again
        break
    else:
        raise AliasMoved(f"campaign {campaign!r}: the champion kept moving while v{version} was being promoted; "
                         "run promote again")
    if promoted:
        if champion is not None:
            _stamp(store, campaign, PREVIOUS_CHAMPION, champion, who=who, why=f"replaced by v{version}: {why}",
                   action=action)
        _stamp(store, campaign, CHAMPION, version, who=who, why=why, action=action)
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


def rollback_target(store: RegistryStore, ledger: AliasLedger, campaign: str) -> str | None:
    """The newest version of the lineage the last operator move replaced (``previous_champion`` when the
    ledger recorded none), or None when there is nothing to return to."""
    operator_moves = ledger.alias_moves(campaign, CHAMPION, OPERATOR_MOVES)
    replaced = operator_moves[0].from_version if operator_moves else resolve(store, campaign, PREVIOUS_CHAMPION)
    if replaced is None:
        return None
    return lineage_head(store, campaign, replaced)


def rollback(store: RegistryStore, ledger: AliasLedger, campaign: str, *, who: str, why: str) -> PromotionResult:
    """Return ``champion`` to the newest version of the lineage the last operator move replaced; the
    rollback is an operator move itself, so a second rollback undoes the first."""
    check_audit(who, why)
    for _ in range(_PROMOTE_ATTEMPTS):  # a checkpoint may move the champion meanwhile: look again
        champion = resolve(store, campaign, CHAMPION)
        target = rollback_target(store, ledger, campaign)
        if target is None:
            raise NotFound(f"campaign {campaign!r} has no previous champion to roll back to")
        if target == champion:
            raise NotFound(f"campaign {campaign!r}: v{target}, the version to roll back to, is already the champion")
        if compare_and_set(store, ledger, campaign, expected=champion, target=target, kind="rollback", who=who,
                           why=why, previous=True):
            break
    else:
        raise AliasMoved(f"campaign {campaign!r}: the champion kept moving while rolling back; run rollback again")
    _stamp(store, campaign, CHAMPION, target, who=who, why=why, action="rollback")
    if champion is not None:
        _stamp(store, campaign, PREVIOUS_CHAMPION, champion, who=who, why=f"rolled back: {why}", action="rollback")
    run_id = _audit_run(
        store, campaign, f"rollback to v{target}",
        {"offerbandit.kind": "promotion", "action": "rollback", "version": target,
         "champion_before": champion or "", "who": who, "why": why},
        {},
    )
    return PromotionResult(
        campaign, "rollback", target, champion, target, promoted=True, forced=False,
        reason=f"rolled back from v{champion} to v{target}", run_id=run_id,
    )
