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

from collections.abc import Mapping
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


def lift_window_end(row: Row, window_s: float, format_windows: Mapping[str, float]) -> float | None:
    """When a decision's reward window closes, as lift reads it (None: not known yet).

    A decision with an arm closes at ``learn_due_at`` (its format's window from its decision, or from its
    activation when deferred); a deferred decision never activated counts by intention to treat, from its
    decision with its format's window (``format_windows``, else ``window_s``); a decision without an arm
    (``no_contact``, or a held-out ``no_contact``) ``window_s`` after it was decided: it has no format."""
    if row["chosen_index"] is None:
        return float(row["decided_at"]) + window_s
    if row["learn_due_at"] is not None:
        return float(row["learn_due_at"])
    if row["deferred"] and row["activated_at"] is None:
        return float(row["decided_at"]) + format_windows.get(row["format"], window_s)
    return None


def lift_reward(row: Row, default: float, window_s: float, now: float,
                format_windows: Mapping[str, float] | None = None) -> float | None:
    """A decision's reward as lift counts it, or None while its window is open (`lift_window_end`).

    Only the closed window admits a decision, whether or not a reward came earlier: a decision rewarded
    early (under ``first`` it is final at once) waits like one that is not, or lift would count the
    responders of the recent past and not yet their non-responders (a bias towards the group whose
    rewards come sooner). Once closed: the stored reward (the first, or the clipped sum), else ``default``."""
    end = lift_window_end(row, window_s, format_windows or {})
    if end is None or now < end:
        return None
    received = bool(row["reward_count"]) and row["reward"] is not None
    if received or (final(row) and row["reward"] is not None):
        return float(row["reward"])
    return default
