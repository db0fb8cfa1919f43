"""Write operations that join rewards and activations onto logged decisions.

They run inside the log writer's transaction (see `decision_log.sqlite.writer.LogWriter`), which serialises
them: "is this the first reward?" and "has this event been learned?" are decided exactly once. Where several
writers share the log (PostgreSQL replicas) the event's row is read ``FOR UPDATE``, so their transactions take
turns on one event and each sees what the other committed (`decision_log.dialect`).

Each event is learned exactly once:
- aggregation ``first``: the first reward inside the window is the reward; the operation *claims*
  the event for learning (sets ``learned_at``) and the caller hands it to the online learner.
- aggregation ``sum``: rewards with distinct ``reward_id`` add up; the event is claimed at window
  close by :func:`claim_due`.
- no reward inside the window: :func:`claim_due` claims it with the campaign's default reward.
- a reward after the event was learned or its window closed is stored as ``late``, never learned.
- a retried call (the same ``reward_id`` and value) gets the stored call's answer; another value is refused.
- a deferred decision's window starts at ``Activate``; never activated, never learned.

Rewards are bounded: a value outside the campaign's ``reward_range`` is refused (InvalidInput naming
``value`` and the range) before anything is written; under ``sum`` the stored aggregate is the sum of
the counted values clipped to the range, so learning, OPE, lift and export all read a bounded reward
(the raw values stay in ``rewards``).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from decision_log import counting
from decision_log.dialect import dialect_of
from decision_log.write_outcomes import ActivationOutcome, RewardOutcome
from decision_log.sqlite.write_ops import WriteOp
from offerbandit.errors import AlreadyExists, InvalidInput, NotFound

RangeOf = Callable[[str], tuple[float, float]]


_EVENT_COLUMNS = ("seq, chosen_index, campaign, user_key, deferred, activated_at, learn_due_at, learned_at, reward, "
                  "reward_count, exploration, offer_id, format, time_slot, decided_at")


def _event(conn: sqlite3.Connection, event_id: str) -> sqlite3.Row:
    """The event's row, locked until the transaction ends where several writers share the log (PostgreSQL:
    two replicas joining rewards onto one event take turns, so "the first reward" is decided once)."""
    row = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM decisions WHERE event_id = ?{dialect_of(conn).for_update}",
                       (event_id,)).fetchone()
    if row is None:
        raise NotFound(f"unknown event_id {event_id!r}")
    return row


def check_in_range(value: float, reward_range: tuple[float, float], campaign: str) -> float:
    """``value`` if it lies in the campaign's reward range, else InvalidInput naming ``value`` and the range."""
    low, high = reward_range
    if not low <= value <= high:
        raise InvalidInput(f"value {value!r} is outside the reward_range [{low!r}, {high!r}] of campaign "
                           f"{campaign!r}", field="value")
    return value


def record_reward(event_id: str, value: float, reward_id: str, received_at: float,
                  aggregation_of: Callable[[str], str], range_of: RangeOf) -> WriteOp:
    """Join one reward onto its decision. ``aggregation_of(campaign)`` gives 'first' or 'sum',
    ``range_of(campaign)`` the reward range the value must lie in."""

    def op(conn: sqlite3.Connection) -> RewardOutcome:
        row = _event(conn, event_id)
        aggregation = aggregation_of(row["campaign"])
        reward_range = range_of(row["campaign"])
        check_in_range(value, reward_range, row["campaign"])

        def outcome(accepted: bool, duplicate: bool, late: bool, learn_seq: int | None = None,
                    retried: bool = False) -> RewardOutcome:
            return RewardOutcome(accepted, duplicate, late, learn_seq, row["campaign"], row["user_key"],
                                 row["offer_id"], row["format"], row["time_slot"], retried)

        stored = conn.execute("SELECT value, status FROM rewards WHERE event_id = ? AND reward_id = ?",
                              (event_id, reward_id)).fetchone() if reward_id else None
        if stored is not None:  # a retried call (its answer was lost): the stored call's answer, nothing written
            if float(stored["value"]) != value:
                raise AlreadyExists(f"reward_id {reward_id!r} of event {event_id!r} was already used with value "
                                    f"{float(stored['value'])!r}; use a new reward_id", field="reward_id")
            status = stored["status"]
            return outcome(status == "counted", status == "duplicate", status == "late", retried=True)
        window_closed = row["learned_at"] is not None or (
            row["learn_due_at"] is not None and received_at > row["learn_due_at"])
        if aggregation == "first" and row["reward_count"] > 0:
            status = "duplicate"
        elif window_closed:
            status = "late"
        else:
            status = "counted"
        conn.execute("INSERT INTO rewards (event_id, reward_id, value, received_at, status) VALUES (?,?,?,?,?)",
                     (event_id, reward_id or None, value, received_at, status))
        if status == "late":
            return outcome(False, False, True)
        if status == "duplicate":
            return outcome(False, True, False)
        new_reward = value if aggregation == "first" else _clipped_sum(conn, event_id, reward_range)
        final_now = aggregation == "first" and row["learned_at"] is None and counting.shown(row)
        conn.execute("UPDATE decisions SET reward = ?, reward_count = reward_count + 1, learned_at = ? "
                     "WHERE seq = ?", (new_reward, received_at if final_now else row["learned_at"], row["seq"]))
        learn_now = final_now and not counting.held_out(row)  # the control group is final, never learned
        return outcome(True, False, False, row["seq"] if learn_now else None)

    return op


def _clipped_sum(conn: sqlite3.Connection, event_id: str, reward_range: tuple[float, float]) -> float:
    """The counted rewards of an event added up (in insertion order), clipped to the range."""
    total = 0.0
    for (value,) in conn.execute("SELECT value FROM rewards WHERE event_id = ? AND status = 'counted' ORDER BY id",
                                 (event_id,)):
        total += value
    low, high = reward_range
    return min(max(total, low), high)


def activate(event_id: str, now: float, window_of: Callable[[str, str | None], float],
             aggregation_of: Callable[[str], str]) -> WriteOp:
    """Mark a deferred decision as shown; its reward window starts now."""

    def op(conn: sqlite3.Connection) -> ActivationOutcome:
        row = _event(conn, event_id)

        def outcome(activated: bool, already: bool, learn_seq: int | None = None) -> ActivationOutcome:
            return ActivationOutcome(activated, already, learn_seq, row["campaign"], row["user_key"],
                                     row["decided_at"], row["offer_id"], row["format"], row["time_slot"],
                                     row["exploration"])

        if not row["deferred"] or row["activated_at"] is not None:
            return outcome(False, True)
        due = None if not counting.contacted(row) else now + window_of(row["campaign"], row["format"])
        final_now = (due is not None and aggregation_of(row["campaign"]) == "first" and row["reward_count"] > 0)
        conn.execute("UPDATE decisions SET activated_at = ?, learn_due_at = ?, learned_at = ? WHERE seq = ?",
                     (now, due, now if final_now else None, row["seq"]))
        learn_now = final_now and not counting.held_out(row)
        return outcome(True, False, row["seq"] if learn_now else None)

    return op


def claim_due(seqs: Sequence[int], now: float, default_reward_of: Callable[[str], float]) -> WriteOp:
    """Claim events whose reward window closed; give those without a reward the default reward.

    Returns the seqs actually claimed (another path may have claimed some meanwhile).
    """

    def op(conn: sqlite3.Connection) -> list[int]:
        claimed: list[int] = []
        for seq in seqs:
            row = conn.execute("SELECT campaign, reward_count FROM decisions WHERE seq = ? AND learned_at IS NULL"
                               + dialect_of(conn).for_update, (seq,)).fetchone()
            if row is None:
                continue
            campaign, count = row[0], row[1]
            if count == 0:
                conn.execute("UPDATE decisions SET learned_at = ?, reward = ? WHERE seq = ?",
                             (now, default_reward_of(campaign), seq))
            else:
                conn.execute("UPDATE decisions SET learned_at = ? WHERE seq = ?", (now, seq))
            claimed.append(seq)
        return claimed

    return op
