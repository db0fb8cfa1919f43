"""The guardrail's rollback: ``champion`` back to the champion a promote replaced, when the guardrail's
test found the promoted lineage worse (DESIGN-NOTES "Alias moves": every writer of aliases moves them by
compare-and-set under the log's lock).

It is a ``rollback`` move by ``who = "guardrail"`` (so ``rollback`` and the guardrail itself treat it as
the last operator move: a second rollback undoes it, and it is never judged), made only while the last
operator move is still the promote the guardrail judged and ``champion`` is still in that promote's
lineage: an operator's move meanwhile is never undone. Recorded as ``champion.*`` tags on the version
rolled back to, ``guardrail.*`` tags and metrics (``guardrail_rollback`` = 1, the estimate and bounds) on
the versions rolled back from, and an audit run with the numbers.
"""
from __future__ import annotations

from collections.abc import Mapping

from offerbandit.errors import AliasMoved
from policy_registry.aliases import compare_and_set, lineage_versions, move_stamp, resolve
from policy_registry.ledger import OPERATOR_MOVES, AliasLedger
from policy_registry.records import CHAMPION, PREVIOUS_CHAMPION, PromotionResult
from policy_registry.runs import log_values, record_run
from policy_registry.store import RegistryStore

__all__ = ["GUARDRAIL", "guardrail_rollback"]

GUARDRAIL = "guardrail"
_ATTEMPTS = 3


def guardrail_rollback(store: RegistryStore, ledger: AliasLedger, campaign: str, *, judged: str, target: str,
                       why: str, metrics: Mapping[str, float]) -> PromotionResult | None:
    """Move ``champion`` from the ``judged`` lineage back to ``target``; None (nothing moved) when the last
    operator move is no longer the promote of ``judged`` or the champion left its lineage."""
    for _ in range(_ATTEMPTS):  # a checkpoint of the judged lineage may move the champion meanwhile
        moves = ledger.alias_moves(campaign, CHAMPION, OPERATOR_MOVES)
        if not moves or moves[0].kind != "promote" or moves[0].to_version != judged:
            return None
        champion = resolve(store, campaign, CHAMPION)
        if champion is None or champion not in lineage_versions(store, campaign, judged):
            return None
        if compare_and_set(store, ledger, campaign, expected=champion, target=target, kind="rollback",
                           who=GUARDRAIL, why=why, previous=True):
            break
    else:
        raise AliasMoved(f"campaign {campaign!r}: the champion kept moving while the guardrail rolled it back")
    move_stamp(store, campaign, target, who=GUARDRAIL, why=why, action="guardrail_rollback")
    store.set_version_tags(campaign, champion, {
        f"{PREVIOUS_CHAMPION}.set_by": GUARDRAIL, f"{PREVIOUS_CHAMPION}.why": f"rolled back: {why}"})
    values = {"guardrail_rollback": 1.0, **metrics}
    for version in dict.fromkeys((judged, champion)):
        store.set_version_tags(campaign, version, {"guardrail.verdict": "rolled_back", "guardrail.why": why,
                                                   "guardrail.rolled_back_to": target})
        log_values(store, store.version_record(campaign, version).run_id, values)
    run_id = record_run(store, f"guardrail rollback to v{target}", {
        "campaign": campaign, "registered_model": store.model_name(campaign), "offerbandit.kind": "promotion",
        "action": "rollback", "version": target, "champion_before": champion, "judged": judged, "who": GUARDRAIL,
        "why": why}, values)
    return PromotionResult(campaign, "rollback", target, champion, target, promoted=True, forced=False,
                           reason=f"guardrail rolled back from v{champion} to v{target}", run_id=run_id)
