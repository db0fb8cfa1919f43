"""Which logged decisions count, for what: one table of row kinds against every rule."""
from __future__ import annotations

import pytest

from decision_log import Exclusions, RewardDefaults
from decision_log import counting
from offerbandit.errors import InvalidInput


def _row(**changes: object) -> dict[str, object]:
    row = {"chosen_index": 0, "exploration": "exploit", "deferred": 0, "activated_at": None, "decided_at": 10.0,
           "learned_at": None, "reward": None, "reward_count": 0}
    row.update(changes)
    return row


KINDS = {
    # kind: (row, contacted, shown, final, learned, shown_at, exclusion)
    "no_contact": (_row(chosen_index=None, exploration="no_contact"), False, False, False, False, 10.0,
                   Exclusions(no_contact=1)),
    "deferred, never activated": (_row(deferred=1), True, False, False, False, 10.0,
                                  Exclusions(deferred_not_activated=1)),
    "deferred, activated, open": (_row(deferred=1, activated_at=12.0), True, True, False, False, 12.0,
                                  Exclusions(not_final=1)),
    "window open": (_row(), True, True, False, False, 10.0, Exclusions(not_final=1)),
    "final": (_row(learned_at=20.0, reward=1.0, reward_count=1), True, True, True, True, 10.0, None),
    "final with the default": (_row(learned_at=20.0, reward=0.25), True, True, True, True, 10.0, None),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_of_row_counts_as_the_rules_say(kind):
    row, contacted, shown, final, learned, shown_at, exclusion = KINDS[kind]
    assert counting.contacted(row) is contacted
    assert counting.shown(row) is shown
    assert counting.final(row) is final
    assert counting.learned(row) is learned
    assert counting.shown_at(row) == shown_at
    assert counting.exclusion(row) == exclusion


def test_rewards_known_received_and_final():
    open_window = _row(reward=1.0, reward_count=1)
    assert counting.known_reward(open_window) == 1.0 and counting.received_reward(open_window) == 1.0
    defaulted = _row(learned_at=20.0, reward=0.25)
    assert counting.known_reward(defaulted) == 0.25 and counting.received_reward(defaulted) is None
    assert counting.known_reward(_row()) is None
    assert counting.final_reward(_row(), 0.5) == 0.5 and counting.final_reward(defaulted, 0.5) == 0.25


def test_exclusions_add_up_and_explain_themselves():
    total = Exclusions(no_contact=1) + Exclusions(not_final=2) + Exclusions(deferred_not_activated=1)
    assert total == Exclusions(1, 1, 2) and total.total == 4
    assert len(total.reasons()) == 3 and Exclusions().reasons() == ()


def test_reward_defaults():
    defaults = RewardDefaults({"quick": 0.25}, fallback=0.1)
    assert defaults.of("quick") == 0.25 and defaults.of("other") == 0.1
    assert RewardDefaults().of("any") == 0.0
    with pytest.raises(InvalidInput):
        RewardDefaults({"quick": float("nan")})
    with pytest.raises(InvalidInput, match="fallback"):
        RewardDefaults(fallback=True)


LIFT = {
    # kind: (row, reward lift counts at now=100 with default 0.25, a 50 s window for decisions without a format
    # and 30 s for sms)
    "final, window closed": (_row(learned_at=20.0, learn_due_at=90.0, reward=1.0, reward_count=1), 1.0),
    "final with the default": (_row(learned_at=90.0, learn_due_at=90.0, reward=0.25), 0.25),
    "final at its first reward, window open": (_row(learned_at=20.0, learn_due_at=200.0, reward=1.0,
                                                    reward_count=1), None),
    "shown, window open": (_row(learn_due_at=200.0), None),
    "shown, window closed, not claimed yet": (_row(learn_due_at=90.0), 0.25),
    "sum, rewarded, window open": (_row(learn_due_at=200.0, reward=2.0, reward_count=2), None),
    "sum, rewarded, window closed": (_row(learn_due_at=90.0, reward=2.0, reward_count=2), 2.0),
    "deferred, never activated, window open": (_row(deferred=1, decided_at=80.0, format="sms"), None),
    "deferred, never activated, window closed": (_row(deferred=1, decided_at=60.0, format="sms"), 0.25),
    "deferred, activated, window open": (_row(deferred=1, decided_at=10.0, activated_at=95.0, learn_due_at=125.0,
                                              format="sms"), None),
    "no_contact, window open": (_row(chosen_index=None, exploration="holdout", decided_at=60.0), None),
    "no_contact, window closed": (_row(chosen_index=None, exploration="holdout", decided_at=40.0), 0.25),
    "no_contact, rewarded, window open": (_row(chosen_index=None, exploration="holdout", decided_at=60.0,
                                               reward=1.0, reward_count=1), None),
    "no_contact, rewarded, window closed": (_row(chosen_index=None, exploration="holdout", decided_at=40.0,
                                                 reward=1.0, reward_count=1), 1.0),
}


@pytest.mark.parametrize("kind", list(LIFT))
def test_lift_counts_a_decision_once_its_window_closed(kind):
    """Only the closed window admits a decision: an early (first) reward does not (it would bias lift)."""
    row, expected = LIFT[kind]
    row.setdefault("learn_due_at", None)
    row.setdefault("format", "")
    assert counting.lift_reward(row, 0.25, 50.0, 100.0, {"sms": 30.0}) == expected


def test_holdout_rows_are_never_learned_nor_evaluated():
    row = _row(exploration="holdout", learned_at=20.0, reward=1.0, reward_count=1)
    assert counting.shown(row) and counting.final(row) and counting.held_out(row)
    assert not counting.learned(row) and counting.exclusion(row) == Exclusions(holdout=1)
