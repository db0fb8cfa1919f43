"""Which logged decisions count, and for what: written once, read by every consumer of the log.

A *row* here is anything indexable by column name (a database row). The rules:

- **contacted**: an arm was chosen (``no_contact`` decisions have none);
- **shown**: contacted, and not deferred or deferred and activated; shown decisions are exposures,
  count in caps and history, and are the only ones ever learned;
- **final**: the event was claimed for learning (``learned_at`` set): its reward will not change;
- **held out**: decided for the campaign's control group (label ``holdout``): shown when an arm was
  served (it counts in caps and history), its reward stored for lift, never learned nor evaluated;
- **learned**: shown, final and not held out; what OPE and version reports evaluate;
- **learnable**: learned and not quarantined (learning it once broke a model); what policies learn from.

A shown decision counts from its activation time when it was deferred, else from its decision time.
"""
from __future__ import annotations

from typing import Any, Protocol

from decision_log.records import Exclusions
from policies.sampler import HOLDOUT, NO_CONTACT


#: `learned` as a SQL condition over the decisions table, for aggregate queries (same rule as below: a
#: deferred decision never activated is never claimed, so it never has ``learned_at``).
LEARNED_SQL = "learned_at IS NOT NULL AND chosen_index IS NOT NULL AND exploration <> 'holdout'"


class Row(Protocol):
    """A logged decision as a backend returns it: its columns by name."""

    def __getitem__(self, column: str) -> Any: ...


def contacted(row: Row) -> bool:
    return row["chosen_index"] is not None and row["exploration"] != NO_CONTACT


def shown(row: Row) -> bool:
    return contacted(row) and (not row["deferred"] or row["activated_at"] is not None)


def final(row: Row) -> bool:
    return row["learned_at"] is not None


def held_out(row: Row) -> bool:
    return row["exploration"] == HOLDOUT


def learned(row: Row) -> bool:
    return shown(row) and final(row) and not held_out(row)


def learnable(row: Row) -> bool:
    """Learned, and not quarantined: the rows policies learn from (needs the ``quarantined_at`` column)."""
    return learned(row) and row["quarantined_at"] is None


def shown_at(row: Row) -> float:
    """When a decision counts from: its activation if it was deferred and activated, else its decision."""
    if row["deferred"] and row["activated_at"] is not None:
        return float(row["activated_at"])
    return float(row["decided_at"])


def known_reward(row: Row) -> float | None:
    """The reward as far as it is known: reported, or the default learned at window close; else None."""
    if row["reward"] is None or (row["reward_count"] == 0 and not final(row)):
        return None
    return float(row["reward"])


def received_reward(row: Row) -> float | None:
    """The (aggregated) reward that actually arrived, None if none did (defaults are not received)."""
    return row["reward"] if row["reward_count"] else None


def final_reward(row: Row, default: float) -> float:
    """The reward an event is learned and evaluated with (the default when none was stored)."""
    return default if row["reward"] is None else float(row["reward"])


def exclusion(row: Row) -> Exclusions | None:
    """Why a decision does not count for evaluation (one reason, most basic first), or None if it does."""
    if held_out(row):
        return Exclusions(holdout=1)
    if not contacted(row):
        return Exclusions(no_contact=1)
    if not shown(row):
        return Exclusions(deferred_not_activated=1)
    if not final(row):
        return Exclusions(not_final=1)
    return None


def lift_reward(row: Row, default: float, window_s: float, now: float, aggregation: str = "first") -> float | None:
    """A decision's reward as lift counts it, or None while it may still change.

    Settled: final (claimed, or learned at its first reward), or, under aggregation ``first``, any reward
    received (a held-out ``no_contact`` is never claimed); else once its window closed: a shown decision's
    ends at ``learn_due_at``, a ``no_contact``'s ``window_s`` after it was decided (it has no format), a
    deferred decision never activated has not opened one. A closed window without a reward counts
    ``default``."""
    if final(row):
        return default if row["reward"] is None else float(row["reward"])
    received = bool(row["reward_count"]) and row["reward"] is not None
    if received and aggregation == "first":
        return float(row["reward"])
    if row["chosen_index"] is not None:
        if row["deferred"] and row["activated_at"] is None:
            return None
        end = row["learn_due_at"]
    else:
        end = float(row["decided_at"]) + window_s
    if end is None or now < float(end):
        return None
    return float(row["reward"]) if received else default
