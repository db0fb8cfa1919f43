"""What an idempotent repeat must answer (DESIGN-NOTES "Compact log and repeats"): the original decision, the
chosen arm and its probability exactly; the ranking's entries as the compact log keeps them (float32; the
chosen arm's entry exact). Works on the proto ``Decision`` and on the client's."""
from __future__ import annotations

import dataclasses

import numpy as np


def _without_ranking(decision):
    if hasattr(decision, "ClearField"):
        copy = type(decision)()
        copy.CopyFrom(decision)
        copy.ClearField("ranking")
        return copy
    return dataclasses.replace(decision, ranking=())


def _ranking(decision) -> dict[tuple[str, str, str], float]:
    return {(a.offer_id, a.format, a.time_slot): a.probability for a in decision.ranking}


def stored_ranking(decision) -> dict[tuple[str, str, str], float]:
    """The ranking of a fresh answer as a repeat of it gives it: float32 entries, the chosen one exact."""
    chosen = (decision.offer_id, decision.format, decision.time_slot)
    return {arm: p if arm == chosen else float(np.float32(p)) for arm, p in _ranking(decision).items()}


def assert_repeat_of(repeat, original) -> None:
    """``repeat`` answers ``original`` again: every field equal, the ranking as the log stores it, in order."""
    assert _without_ranking(repeat) == _without_ranking(original)
    assert _ranking(repeat) == stored_ranking(original)
    assert repeat == original  # first answers carry the stored form already: a repeat is the same answer
    probabilities = [a.probability for a in repeat.ranking]
    assert probabilities == sorted(probabilities, reverse=True)
