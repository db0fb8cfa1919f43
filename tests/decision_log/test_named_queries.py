"""The log's named queries answer with records: learning streams, history, exposures, feedback (both backends)."""
from __future__ import annotations

import json

import numpy as np

from decision_log import DecisionRow, LogFilter, RewardDefaults, encode_offers, indices_to_blob, open_log, pmf_to_blob
from policies.types import Offer

OFFERS = (Offer("o1", {"category": "food"}), Offer("o2", {"category": "travel"}))


def _row(event_id: str, decided_at: float, *, chosen: int | None = 0, deferred: bool = False,
         campaign: str = "default") -> DecisionRow:
    offer_set_id, offer_set_json = encode_offers(OFFERS)
    contact = chosen is not None
    return DecisionRow(
        event_id=event_id, campaign=campaign, decided_at=decided_at, user_key="u", context_json="{}",
        numeric_json="{}", offer_set_id=offer_set_id, offer_set_json=offer_set_json, formats_json=json.dumps(["sms"]),
        time_slots_json=json.dumps(["m"]), eligible=indices_to_blob([0, 1]) if contact else b"",
        pmf=pmf_to_blob(np.array([0.75, 0.25])) if contact else b"", policy_pmf=b"", chosen_index=chosen,
        offer_id=OFFERS[chosen].id if contact else "", format="sms" if contact else "",
        time_slot="m" if contact else "", probability=0.75 if chosen == 0 else (0.25 if contact else 1.0),
        policy_version="bootstrap", exploration="exploit" if contact else "no_contact", beta=0.0,
        deferred=deferred, learn_due_at=decided_at + 1 if contact and not deferred else None, baseline_json=None,
        no_contact_reason="" if contact else "excluded", removed="{}")


def test_named_queries_over_a_small_log(log_where):
    with open_log(log_where, writable=True) as log:
        log.insert_decisions([_row(f"e{i}", float(i), chosen=i % 2) for i in range(5)]
                             + [_row("nc", 5.0, chosen=None), _row("idle", 6.0, deferred=True)]).result(10)
        assert log.due_for_learning(now=100.0) == [1, 2, 3, 4, 5]
        # claimed in reverse order, so learning order differs from log order
        for seq, when in zip([5, 4, 3, 2, 1], [50.0, 50.0, 60.0, 70.0, 80.0]):
            assert log.claim_due([seq], when, RewardDefaults({"default": 0.5})).result(10) == [seq]
        assert log.record_reward("e4", 1.0, "r1", 90.0, lambda campaign: "first").result(10).late

        order = [row["event_id"] for row in log.backend.learned_after("default", 55.0, chunk=1)]
        assert order == ["e2", "e1", "e0"]  # claimed at 60, 70, 80; strictly after 55
        ties = [row["event_id"] for row in log.backend.learned_after("default", 0.0, chunk=1)]
        assert ties == ["e3", "e4", "e2", "e1", "e0"]  # equal learned_at in log order, none lost across pages

        events = list(log.learning_events(RewardDefaults(), campaign="default", learned_after=55.0))
        assert [e.reward for e in events] == [0.5, 0.5, 0.5] and [e.chosen for e in events] == [0, 1, 0]
        assert len(list(log.learning_events(RewardDefaults(), up_to_seq=2))) == 2
        assert [d.event_id for d in log.learned_decisions([7, 6, 2, 1])] == ["e0", "e1"]  # not idle nor nc
        assert [d.event_id for d in log.decisions_by_seq([3, 1])] == ["e2", "e0"]

        history = list(log.history_since(0.0))
        assert [r.event_id for r in history] == ["e0", "e1", "e2", "e3", "e4", "idle"]
        assert [r.counted for r in history][-1] is False and history[1].category == "travel"
        assert [e.event_id for e in log.exposures()] == ["e0", "e1", "e2", "e3", "e4"]
        assert all(e.reward == 0.5 for e in log.exposures())

        chunks = list(log.feedback(LogFilter(campaign="default"), RewardDefaults(), chunk=3))
        assert [len(c.decisions) for c in chunks] == [3, 2, 0]
        assert sum((c.exclusions for c in chunks[1:]), chunks[0].exclusions).total == 2
        assert chunks[0].decisions[1].probability == 0.25 and chunks[0].decisions[1].chosen == 1

        assert log.live_stats("default", "bootstrap").events == 5
        assert [o.reward for o in log.served_outcomes("default")] == [0.5] * 5
        assert log.find_decision("nc").no_contact_reason == "excluded"
        assert log.offers(encode_offers(OFFERS)[0]) == OFFERS


def test_stored_decisions_and_settled_rewards_for_the_guardrail(log_where):
    """What the guardrail reads: every stored field in log order, and each decision's reward once its window
    closed -- the received one, else the default -- clipped to the range; nothing while a window is open
    and no reward came."""
    defaults = RewardDefaults({"default": 0.25}, ranges={"default": (0.0, 2.0)})
    with open_log(log_where, writable=True) as log:
        log.insert_decisions([_row(f"e{i}", float(i), chosen=i % 2) for i in range(4)]
                             + [_row("idle", 4.0, deferred=True)]).result(10)
        assert log.record_reward("e1", 2.0, "r1", 1.5, lambda campaign: "sum", defaults.range_of).result(10).accepted
        assert log.record_reward("e1", 1.5, "r2", 1.6, lambda campaign: "sum", defaults.range_of).result(10).accepted
        assert log.record_reward("e2", 1.0, "r3", 2.5, lambda campaign: "first", defaults.range_of).result(10).accepted
        stored = list(log.stored_decisions(LogFilter(campaign="default", since=1.0), chunk=2))
        assert [s.decision.event_id for s in stored] == ["e1", "e2", "e3", "idle"]
        assert [s.learn_due_at for s in stored] == [2.0, 3.0, 4.0, None]
        assert stored[0].decision.pmf.tolist() == [0.75, 0.25] and stored[0].decision.probability == 0.25
        settled = log.settled_rewards([1, 2, 3, 4, 5], defaults, now=3.5)
        assert settled == {1: 0.25, 2: 2.0, 3: 1.0}  # e0 default, e1's sum clipped; e3's window open; idle never opened
        assert log.settled_rewards([4], defaults, now=4.0) == {4: 0.25}
