"""What lift reads from the log, on both backends: a decision enters once its window closed (an early first
reward does not admit it), with the serving version and decision time it was logged with."""
from __future__ import annotations

from decision_log import LiftOutcome, RewardDefaults, open_log
from tests.decision_log.test_decision_log import _row


def test_lift_reads_decisions_whose_window_closed_with_their_version(log_place):
    log = open_log(log_place.where, writable=True)
    rows = [_row("early", "ua", decided_at=10.0, learn_due_at=100.0, policy_version="3"),
            _row("open", "ub", decided_at=20.0, learn_due_at=200.0, policy_version="3"),
            _row("held", "uc", decided_at=10.0, chosen_index=None, offer_id="", format="", time_slot="",
                 probability=1.0, exploration="holdout", no_contact_reason="holdout", policy_version="3"),
            _row("deferred", "ud", decided_at=10.0, deferred=True, policy_version="4")]
    log.insert_decisions(rows).result(10)
    first = lambda campaign: "first"  # noqa: E731
    for event_id, at in (("early", 50.0), ("open", 60.0), ("held", 70.0)):
        assert log.record_reward(event_id, 1.0, "", at, first).result(10).accepted
    defaults = RewardDefaults({"default": 0.25})

    def outcomes(now: float) -> dict[str, LiftOutcome]:
        by_user = {o.user_key: o for o in log.lift_outcomes("default", defaults, 40.0, now,
                                                            format_windows={"sms": 30.0})}
        return by_user

    # at 60 "early" has its (first) reward and is final, but its window runs until 100: not yet
    assert outcomes(60.0) == {"uc": LiftOutcome("uc", True, 1.0, "3", 10.0),
                              "ud": LiftOutcome("ud", False, 0.25, "4", 10.0)}
    assert outcomes(120.0) == {"ua": LiftOutcome("ua", False, 1.0, "3", 10.0),
                               "uc": LiftOutcome("uc", True, 1.0, "3", 10.0),
                               "ud": LiftOutcome("ud", False, 0.25, "4", 10.0)}
    assert set(outcomes(200.0)) == {"ua", "ub", "uc", "ud"}
    assert set(outcomes(45.0)) == {"ud"}  # the deferred one by its sms window (30 s), the holdout's is 40 s
    log.close()
