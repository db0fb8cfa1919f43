"""Caps decided inside the commit that writes the decision, the same way on both backends: committed
contacts plus those ahead in the same group count; deferred ones only once activated; per format or '*'."""
from __future__ import annotations

import json

from decision_log import CapLimit, InsertOutcome, indices_to_blob, open_log
from tests.decision_log.test_decision_log import _paused, _row

WEEK = 7 * 86400.0
ELIGIBLE = indices_to_blob([0, 1, 2])


def _contacts(log, user_key):
    return [r["event_id"] for r in log.backend.user_decisions(user_key, 0.0, 100) if r["chosen_index"] is not None]


def test_contacts_ahead_in_one_call_and_one_group_count(log_where):
    cap = (CapLimit("*", WEEK, 2),)
    with open_log(log_where, writable=True) as log:
        batch = log.insert_decisions([_row(f"b{i}", user_key="ana", decided_at=100.0 + i, caps=cap, eligible=ELIGIBLE,
                                           removed='{"exclusion": 1, "cap": 0}') for i in range(4)])
        assert batch.result(10) == InsertOutcome(4, capped=("b2", "b3"))
        release = _paused(log.backend.writer)  # the next calls share one commit group
        grouped = [log.insert_decisions([_row(f"g{i}", user_key="bo", decided_at=100.0 + i, caps=cap)])
                   for i in range(3)]
        release.set()
        assert [f.result(10).capped for f in grouped] == [(), (), ("g2",)]
        assert _contacts(log, "ana") == ["b0", "b1"] and _contacts(log, "bo") == ["g0", "g1"]
        capped = log.find_decision("b3")
        assert (capped.chosen, capped.exploration, capped.no_contact_reason, capped.probability) == (
            None, "no_contact", "cap", 1.0)
        assert len(capped.pmf) == 0 and capped.deferred is False
        stored = {r["event_id"]: r["removed"] for r in log.backend.user_decisions("ana", 0.0, 10)}
        assert json.loads(stored["b3"]) == {"exclusion": 1, "cap": 3}  # the three eligible arms went to the cap
        assert json.loads(stored["b0"]) == {"exclusion": 1, "cap": 0}


def test_the_cap_rule_matches_the_history_rule(log_where):
    with open_log(log_where, writable=True) as log:
        log.insert_decisions([
            _row("old", user_key="cy", decided_at=10.0),  # outside the window
            _row("email", user_key="cy", decided_at=990.0, format="email"),
            _row("idle", user_key="cy", decided_at=991.0, deferred=True),  # deferred, never activated: no contact
            _row("shown", user_key="cy", decided_at=992.0, deferred=True),
        ]).result(10)
        log.activate("shown", 993.0, lambda campaign, fmt: 60.0, lambda campaign: "first").result(10)
        def capped(event_id, user_key="cy", fmt="sms", cap=("sms", 2), at=1000.0):
            row = _row(event_id, user_key=user_key, decided_at=at, format=fmt, caps=(CapLimit(cap[0], 100.0, cap[1]),))
            return log.insert_decisions([row]).result(10).capped

        assert capped("n1") == ()
        # now 'shown' and n1 are the sms contacts within 100 s: the next sms is capped, an email is not
        assert capped("n2", at=1001.0) == ("n2",)
        assert capped("n3", fmt="email", cap=("email", 2), at=1002.0) == ()
        # '*': email, shown, n1, n3 (old is outside the window, idle was never shown, n2 was capped)
        assert capped("n4", cap=("*", 4), at=1003.0) == ("n4",)
        assert capped("other", user_key="dee", cap=("*", 4), at=1003.0) == ()
