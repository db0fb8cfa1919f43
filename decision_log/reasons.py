"""Which rule removed each candidate arm of a logged decision (what ``GetDecision`` answers), stored compactly.

The contact rules decide at two grains (`policies.rules.apply_rules`): per offer (``excluded``,
``suppression``) and per (format, slot) pair (``consent``, ``cap``, ``quiet_hours``). A compact row keeps those
verdicts in its ``removed`` column after the five removal counts, one character per offer and per pair of
the row's candidate product (offer-set order; pairs ``formats x time_slots``, format-major):

    removed = "<counts>;<offer reasons>;<pair reasons>"      e.g. "4,4,0,0,0;-x;--cc"

with ``-`` kept, ``x`` excluded, ``c`` consent, ``k`` cap, ``q`` quiet_hours, ``s`` suppression. A segment is
written dense (one character per item, trailing ``-`` dropped) or sparse (``<index><character>`` tokens, e.g.
``"1203x"``), whichever is shorter; empty means every item kept. Nothing removed: the column stays NULL, so
a row grows only by what its rules removed (a few bytes).

An arm's first rule (the order ``excluded``, ``consent``, ``cap``, ``quiet_hours``, ``suppression``,
``holdout``): its offer's ``excluded``, else its pair's rule, else its offer's ``suppression``. Two more
come from the row itself, not from the engine's rules:

- ``holdout``: an arm the rules left eligible that a holdout decision did not serve;
- ``cap`` decided by the writer at commit (`decision_log.caps`): the row was turned into ``no_contact`` with
  reason ``cap`` and no eligible arm, so every arm no engine rule removed was removed by that cap.

Rows written before the reasons were kept (counts only, or JSON counts in the old format): when a single
rule removed arms, every arm not eligible was removed by it; when several did, which one took which arm was
not logged and the rule reads ``""`` (holdout arms are still named: they come from the row).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np

from policies.rules import RULE_NAMES, RemovalCounts
from policies.sampler import HOLDOUT
from policies.types import ArmSet, JointArm

__all__ = ["CAP_RULE", "HOLDOUT_RULE", "REASON_CHARS", "RULES", "RemovedArm", "reasons_text", "removed_arms",
           "rule_codes", "split_removed"]

#: every rule GetDecision names, in the order the first one wins
RULES = (*RULE_NAMES, HOLDOUT)
HOLDOUT_RULE = HOLDOUT
CAP_RULE = RULE_NAMES[2]
#: the stored character of rule code i (0: kept; i: ``RULE_NAMES[i - 1]``)
REASON_CHARS = "-xckqs"
_CODE_OF = {char: code for code, char in enumerate(REASON_CHARS)}
_EXCLUDED, _SUPPRESSION = 1, 5
_SPARSE = re.compile(r"(\d+)([a-z])")


@dataclass(frozen=True, slots=True)
class RemovedArm:
    """A candidate arm of a logged decision that was not offered (probability 0), and the first rule that
    removed it (``""``: a row from before the reasons were logged that cannot tell)."""

    arm: JointArm
    rule: str


def _segment(codes: np.ndarray | None) -> str:
    if codes is None or not np.any(codes):
        return ""
    dense = "".join(REASON_CHARS[int(c)] for c in codes).rstrip("-")
    sparse = "".join(f"{i}{REASON_CHARS[int(codes[i])]}" for i in np.flatnonzero(codes))
    return sparse if len(sparse) < len(dense) else dense


def reasons_text(offer_codes: np.ndarray | None, pair_codes: np.ndarray | None) -> str:
    """The reasons part of a compact ``removed`` column (``";<offers>;<pairs>"``; "" when nothing was removed)."""
    offers, pairs = _segment(offer_codes), _segment(pair_codes)
    return f";{offers};{pairs}" if offers or pairs else ""


def split_removed(text: str | None) -> tuple[str, str | None]:
    """A ``removed`` column's counts part and its reasons part (None: the row kept no reasons)."""
    if not text:
        return "", None
    counts, sep, reasons = text.partition(";")
    return counts, (reasons if sep else None)


def _parse_segment(text: str, n: int) -> np.ndarray:
    codes = np.zeros(n, dtype=np.int8)
    if any(ch.isdigit() for ch in text):
        for index, char in _SPARSE.findall(text):
            if int(index) < n:
                codes[int(index)] = _CODE_OF.get(char, 0)
        return codes
    for i, char in enumerate(text[:n]):
        codes[i] = _CODE_OF.get(char, 0)
    return codes


def rule_codes(reasons: str, n_offers: int, n_formats: int, n_slots: int) -> np.ndarray:
    """Each candidate's first engine rule code (0: none), in product order (offer-major), from a reasons part."""
    offer_text, _, pair_text = reasons.partition(";")
    offers = _parse_segment(offer_text, n_offers)
    pairs = _parse_segment(pair_text, n_formats * n_slots)
    by_offer = np.repeat(offers, n_formats * n_slots)
    by_pair = np.tile(pairs, n_offers)
    return np.where(by_offer == _EXCLUDED, _EXCLUDED, np.where(by_pair != 0, by_pair, by_offer)).astype(np.int8)


def _single_rule(counts: RemovalCounts) -> str:
    """The one rule that removed arms in an old row's counts, else "" (several, or none)."""
    used = [rule for rule, field in zip(RULE_NAMES, dataclasses.fields(RemovalCounts)) if getattr(counts, field.name)]
    return used[0] if len(used) == 1 else ""


def removed_arms(product: ArmSet, eligible: np.ndarray, pmf: np.ndarray, *, removed: str | None,
                 counts: RemovalCounts, exploration: str, no_contact_reason: str, n_formats: int,
                 n_slots: int) -> tuple[RemovedArm, ...]:
    """Every candidate of ``product`` with probability 0 and the first rule that removed it, in product order.

    ``eligible``: the eligible candidates' indices; ``pmf`` the served pmf over them (empty: nothing served);
    ``removed``: the row's column; ``counts``: its removal counts (the fallback of rows without reasons)."""
    n = len(product.arms)
    _, reasons = split_removed(removed)
    if reasons is not None:
        codes = rule_codes(reasons, len(product.offers), n_formats, n_slots)
        fallback = ""
    else:
        codes = np.zeros(n, dtype=np.int8)
        fallback = _single_rule(counts)
    served = np.zeros(n, dtype=bool)
    in_eligible = np.zeros(n, dtype=bool)
    in_eligible[eligible] = True
    if len(pmf) == len(eligible):
        served[eligible] = np.asarray(pmf) > 0
    writer_cap = no_contact_reason == CAP_RULE and not len(eligible)
    out = []
    for i, arm in enumerate(product.arms):
        if served[i]:
            continue
        if codes[i]:
            rule = RULE_NAMES[codes[i] - 1]
        elif in_eligible[i]:
            if exploration != HOLDOUT:
                continue  # eligible, and the policy gave it probability 0: no rule removed it
            rule = HOLDOUT_RULE
        elif reasons is not None:
            rule = CAP_RULE if writer_cap else ""
        else:
            rule = fallback
        out.append(RemovedArm(arm, rule))
    return tuple(out)
