"""The compact decision log (issue 15), on both backends: a row decided by a real server decodes, field by field,
back to what the engine decided; arm sets are stored once; rows written the old way still read."""
from __future__ import annotations

import json

import numpy as np
import pytest

from decision_log import (DecisionRow, LogFilter, RewardDefaults, arm_set_key, encode_offers, indices_to_blob, open_log,
                          pmf_to_blob)
from decision_log.codec import blob_to_fingerprint, fingerprint_to_blob, values_text
from policies.rules import RemovalCounts
from policies.types import ArmSet, DecisionContext, JointArm, Offer
from service.log_records import record_of
from tests.conftest import FORMATS, OFFERS, SLOTS, make_request

F32 = 2.0 ** -24  # float32's unit roundoff: a stored entry is within F32 * p (+ 2^-150 below the normal range)
CANDIDATES = ArmSet.product([Offer(oid, feats) for oid, feats in OFFERS], FORMATS, SLOTS)


@pytest.fixture
def serve_on(start_server, log_place, request, monkeypatch):
    """A real server logging to ``log_place`` (on PostgreSQL a replica: it needs the registry's address)."""
    if log_place.kind == "postgres":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", request.getfixturevalue("mlflow_store").tracking_uri)
    return lambda: start_server(f'[log]\nurl = "{log_place.url}"\n')


def _request(event_id: str, user: str, **fields):
    return make_request(user=user, event_id=event_id, context={"segment": "young", "device": "ios"},
                        numeric={"tenure": 7.5}, **fields)


def _expected_eligible(excluded: tuple[str, ...], consented: tuple[str, ...]) -> tuple[np.ndarray, RemovalCounts]:
    kept, exclusion, consent = [], 0, 0
    for i, arm in enumerate(CANDIDATES.arms):
        if arm.offer_id in excluded:
            exclusion += 1
        elif consented and arm.format not in consented:
            consent += 1
        else:
            kept.append(i)
    return np.array(kept), RemovalCounts(exclusion=exclusion, consent=consent)


CASES = [  # event id, user, excluded offers, consented formats, baseline
    ("all", "ana", (), (), None),
    ("some", "ana", ("o2",), ("sms",), None),
    ("baseline", "bo", ("o3",), (), ("o1", "email", "evening")),
    ("again", "bo", (), (), None),
]


def test_every_stored_field_decodes_to_what_the_engine_decided(serve_on, log_place):
    served = serve_on()
    runtime = served.engine.runtime("default")
    answers = {}
    for event_id, user, excluded, consented, baseline in CASES:
        request = _request(event_id, user, excluded_offers=list(excluded), consented_formats=list(consented))
        if baseline:
            request.baseline.offer_id, request.baseline.format, request.baseline.time_slot = baseline
        answers[event_id] = served.stub.Decide(request, timeout=10)
    policy, _ = runtime.live.current()
    stored_policy = set()
    with open_log(log_place.url) as log:
        for event_id, user, excluded, consented, baseline in CASES:
            answer, stored = answers[event_id], log.stored_decision(event_id)
            decision = stored.decision
            eligible, removed = _expected_eligible(excluded, consented)
            # the candidate product, by reference: the offer set as sent, the formats and slots
            assert stored.compact and stored.arm_set_id
            assert stored.offer_set_id == encode_offers(CANDIDATES.offers.values())[0]
            assert log.offers(stored.offer_set_id) == tuple(CANDIDATES.offers.values())
            assert (stored.formats, stored.time_slots) == (tuple(FORMATS), tuple(SLOTS))
            np.testing.assert_array_equal(stored.eligible, eligible)
            assert decision.arm_set.arms == tuple(CANDIDATES.arms[i] for i in eligible)
            assert stored.removed == removed
            # every candidate not eligible, with the first rule that removed it (what GetDecision answers)
            assert [(r.arm, r.rule) for r in stored.removed_arms] == [
                (arm, "excluded" if arm.offer_id in excluded else "consent")
                for i, arm in enumerate(CANDIDATES.arms) if i not in set(eligible.tolist())]
            # the served pmf: float32 entries, within float32 rounding of the fresh answer's ranking
            served_p = dict(((a.offer_id, a.format, a.time_slot), a.probability) for a in answer.ranking)
            fresh = np.array([served_p.get((a.offer_id, a.format, a.time_slot), 0.0) for a in decision.arm_set.arms])
            assert len(decision.pmf) == len(eligible) and decision.pmf.dtype == np.float64
            assert np.all(np.abs(decision.pmf - fresh) <= F32 * fresh + 2.0 ** -150)
            others = np.delete(decision.pmf, decision.chosen)
            assert np.all(others.astype(np.float32).astype(np.float64) == others)  # float32 values but the chosen
            # the chosen arm and its probability: exact
            assert decision.chosen_arm == JointArm(answer.offer_id, answer.format, answer.time_slot)
            assert decision.probability == answer.probability and decision.pmf[decision.chosen] == answer.probability
            assert (decision.policy_version, decision.exploration) == (answer.policy_version, answer.exploration)
            # the policy's own pmf: stored only where it differs from the served one
            context = DecisionContext(decision.context.user_key, {"segment": "young", "device": "ios"},
                                      {"tenure": 7.5}, "default")
            base = JointArm(*baseline) if baseline else None
            p_policy = np.asarray(runtime.serving_pmf(policy, context, decision.arm_set, base), dtype=np.float64)
            assert stored.policy_pmf_stored == (not np.array_equal(p_policy, fresh))
            if stored.policy_pmf_stored:
                stored_policy.add(event_id)
                assert np.all(np.abs(stored.policy_pmf - p_policy) <= F32 * p_policy + 2.0 ** -150)
            else:
                assert stored.policy_pmf is decision.pmf
            # the rest of the row
            assert decision.context.context == {"segment": "young", "device": "ios"}
            assert decision.context.numeric == {"tenure": 7.5} and decision.context.campaign == "default"
            assert decision.baseline == base and decision.deferred is False and decision.no_contact_reason == ""
            record = served.engine.claims.recent.get(event_id)
            assert decision.fingerprint == record.fingerprint and decision.fingerprint
            assert stored.learn_due_at == pytest.approx(
                decision.decided_at + runtime.config.reward_window(answer.format), abs=1e-6)
            assert 0.0 <= stored.beta <= 1.0 and stored.key_id is None
            # a repeat answered from memory and one read back from the log are the same answer
            for limit in (0, 2):
                assert record.outcome(limit) == record_of(decision).outcome(limit)
    assert stored_policy and stored_policy < {event_id for event_id, *_ in CASES}  # both kinds were decided
    # what is on disk: one arm set for the four decisions, no JSON per row for formats and slots
    assert log_place.sql("SELECT count(*) FROM arm_sets") == [(1,)]
    raw = {r[0]: r[1:] for r in log_place.sql(
        "SELECT event_id, formats, time_slots, eligible, length(pmf), removed, arm_set_key, offer_set, arm_set_id, "
        "fingerprint, request_hash, context, numeric FROM decisions")}
    assert all(formats is None and slots is None and offer_set is None  # all three through the arm set
               for formats, slots, _, _, _, _, offer_set, *_ in raw.values())
    # schema 4: the arm set by its integer key, the fingerprint as 19 bytes, the features' values without keys
    [(arm_set_id, arm_set_text, key)] = log_place.sql("SELECT id, arms, key FROM arm_sets")
    assert sorted(json.loads(arm_set_text)[3]) == ["device", "segment"] and json.loads(arm_set_text)[4] == ["tenure"]
    for event_id, (*_, stored_key, _, text_id, text_fingerprint, request_hash, context, numeric) in raw.items():
        assert stored_key == key == arm_set_key(arm_set_id) and text_id is None and text_fingerprint is None
        fingerprint = served.engine.claims.recent.get(event_id).fingerprint
        assert bytes(request_hash) == fingerprint_to_blob(fingerprint) and len(bytes(request_hash)) == 19
        assert blob_to_fingerprint(bytes(request_hash)) == fingerprint
        assert sorted(context.split("\x1f")[1:]) == ["ios", "young"] and numeric == "\x1f7.5" == values_text([7.5])
    assert raw["all"][2] is None  # every candidate eligible: no bitmask
    assert bytes(raw["some"][2]) == bytes([0b11, 0b11])  # {o1, o3} x sms x {morning, evening}: arms 0, 1, 8, 9
    assert raw["some"][3] == 4 * 4 and raw["all"][3] == 4 * len(CANDIDATES.arms)
    # the counts (exclusion, consent, cap, quiet hours, suppression), then the rules' verdicts per offer (o2
    # excluded) and per (format, slot) pair (email x {morning, evening}: no consent); nothing removed: NULL
    assert raw["some"][4] == "4,4,0,0,0;-x;--cc" and raw["all"][4] is None


def test_no_contact_rows_decode(serve_on, log_place):
    served = serve_on()
    answer = served.stub.Decide(_request("none", "cy", excluded_offers=["o1", "o2", "o3"]), timeout=10)
    assert answer.offer_id == "" and answer.probability == 1.0
    with open_log(log_place.url) as log:
        stored = log.stored_decision("none")
        assert stored.compact and len(stored.eligible) == 0 and len(stored.decision.pmf) == 0
        assert stored.decision.chosen is None and stored.removed == RemovalCounts(exclusion=12)
        assert stored.decision.no_contact_reason == "excluded" and not stored.policy_pmf_stored
        assert [(r.arm, r.rule) for r in stored.removed_arms] == [(arm, "excluded") for arm in CANDIDATES.arms]
        assert record_of(stored.decision).outcome() == served.engine.claims.recent.get("none").outcome()
    assert log_place.sql("SELECT length(eligible), length(pmf) FROM decisions") == [(0, 0)]


def _old_row(event_id: str, pmf: np.ndarray, eligible: list[int], chosen: int) -> DecisionRow:
    offer_set_id, offer_set_json = encode_offers(CANDIDATES.offers.values())
    arm = CANDIDATES.arms[eligible[chosen]]
    return DecisionRow(
        event_id=event_id, campaign="default", decided_at=1000.0, user_key="u" * 32, context_json='{"segment":"old"}',
        numeric_json='{"x":1.0}', offer_set_id=offer_set_id, offer_set_json=offer_set_json,
        formats_json=json.dumps(FORMATS), time_slots_json=json.dumps(SLOTS), eligible=indices_to_blob(eligible),
        pmf=pmf_to_blob(pmf), policy_pmf=pmf_to_blob(pmf[::-1]), chosen_index=chosen, offer_id=arm.offer_id,
        format=arm.format, time_slot=arm.time_slot, probability=float(pmf[chosen]), policy_version="bootstrap",
        exploration="explore", beta=0.25, deferred=False, learn_due_at=1010.0, baseline_json=None,
        no_contact_reason="", removed='{"exclusion": 2, "consent": 0, "cap": 1}', fingerprint="f1:old")


def test_rows_written_the_old_way_still_read(log_where):
    pmf = np.array([0.1, 0.2, 0.3, 0.4]) / 1.0000001  # not float32 values: an old row keeps float64 exactly
    with open_log(log_where, writable=True) as log:
        log.insert_decisions([_old_row("old", pmf, [1, 4, 6, 11], chosen=2)]).result(10)
        log.record_reward("old", 0.7, "r1", 1000.5, lambda campaign: "first").result(10)
        log.claim_due(log.due_for_learning(2000.0), 2000.0, RewardDefaults()).result(10)
        stored = log.stored_decision("old")
        decision = stored.decision
        assert not stored.compact and stored.arm_set_id is None
        np.testing.assert_array_equal(decision.pmf, pmf)  # bit for bit
        np.testing.assert_array_equal(stored.policy_pmf, pmf[::-1])
        np.testing.assert_array_equal(stored.eligible, [1, 4, 6, 11])
        assert decision.arm_set.arms == tuple(CANDIDATES.arms[i] for i in (1, 4, 6, 11))
        assert decision.chosen_arm == CANDIDATES.arms[6] and decision.probability == pmf[2]
        assert stored.removed == RemovalCounts(exclusion=2, cap=1) and stored.beta == 0.25
        # an old row kept counts, not reasons: two rules removed arms, so which took which reads ""
        assert [(r.arm, r.rule) for r in stored.removed_arms] == [
            (arm, "") for i, arm in enumerate(CANDIDATES.arms) if i not in (1, 4, 6, 11)]
        assert (stored.formats, stored.time_slots) == (tuple(FORMATS), tuple(SLOTS))
        assert decision.context.context == {"segment": "old"} and decision.fingerprint == "f1:old"
        [listed] = list(log.decisions())
        assert listed.event_id == "old" and np.array_equal(listed.pmf, pmf)
        [chunk] = list(log.feedback(LogFilter(),
                                    RewardDefaults()))
        [final] = chunk.decisions
        assert (final.chosen, final.probability, final.reward) == (2, pmf[2], 0.7)
        np.testing.assert_array_equal(final.pmf, pmf)
        [event] = list(log.learning_events(RewardDefaults()))
        assert event.arm_set.arms == decision.arm_set.arms and event.chosen == 2


# --- the removal reasons (GetDecision): what the engine decided, back from the stored row -------------------

def _reference_rule(arm: JointArm, offers: dict, excluded: set, consented: set | None, capped: set, quiet: set,
                    suppressed_types: set) -> str:
    """The first rule that removes ``arm``, checked arm by arm in the contract's order (the reference)."""
    if arm.offer_id in excluded:
        return "excluded"
    if consented is not None and arm.format not in consented:
        return "consent"
    if arm.format in capped:
        return "cap"
    if (arm.format, arm.time_slot) in quiet:
        return "quiet_hours"
    if offers[arm.offer_id].features.get("offer_type") in suppressed_types:
        return "suppression"
    return ""


def test_the_reasons_decode_to_the_engines_rules_for_random_requests():
    """Seeded random requests through `apply_rules` (caps from a real history, quiet hours, consent, exclusions,
    suppression), encoded as the engine writes them and decoded as GetDecision reads them, against a per-arm
    reference; dense and sparse segments both occur."""
    from decision_log.codec import removed_text
    from decision_log.reasons import removed_arms, split_removed
    from policies.history import HistoryConfig, UserHistoryStore
    from policies.rules import FrequencyCap, QuietHours, RulesConfig, SuppressionRule, apply_rules

    rng = np.random.default_rng(15)
    formats, slots = ["sms", "email", "push"], ["morning", "lunch", "evening", "night"]
    hours = {"morning": 8, "lunch": 12, "evening": 19, "night": 23}
    seen_sparse = seen_dense = 0
    for trial in range(60):
        n_offers = int(rng.integers(1, 40))
        offers = [Offer(f"o{i}", {"category": f"c{i % 3}", "offer_type": str(rng.choice(["cross_sell", "loyalty"]))})
                  for i in range(n_offers)]
        product = ArmSet.product(offers, formats, slots)
        excluded = {o.id for o in offers if rng.random() < 0.15}
        consented = None if rng.random() < 0.4 else {f for f in formats if rng.random() < 0.6}
        cap_sms = rng.random() < 0.5
        quiet = QuietHours("email", 18, 22) if rng.random() < 0.5 else None
        problem = rng.random() < 0.5
        rules = RulesConfig(caps=(FrequencyCap("sms", 1, 3600.0),),
                            quiet_hours=(quiet,) if quiet else (), slot_hours=hours,
                            suppressions=(SuppressionRule("problem", "yes", "offer_type", frozenset({"cross_sell"})),))
        store = UserHistoryStore(HistoryConfig(horizon_s=10_000.0))
        if cap_sms:
            store.record_contact("u", event_id="e", when=999.0, arm=JointArm("o0", "sms", "morning"), category="c0",
                                 counts=True)
        context = DecisionContext("u", {"problem": "yes" if problem else "no"})
        eligibility = apply_rules(product, context, store.snapshot("u", 1000.0), 1000.0, rules,
                                  excluded_offers=frozenset(excluded),
                                  consented_formats=None if consented is None else frozenset(consented))
        text = removed_text(eligibility.removed, eligibility.offer_reasons, eligibility.pair_reasons)
        pmf = np.full(len(eligibility.kept), 1.0 / max(len(eligibility.kept), 1))
        decoded = removed_arms(product, eligibility.kept, pmf, removed=text or None, counts=eligibility.removed,
                               exploration="explore", no_contact_reason="", n_formats=len(formats),
                               n_slots=len(slots))
        by_offer = {o.id: o for o in offers}
        quiet_pairs = {("email", s) for s in slots if quiet and quiet.covers(hours[s])}
        expected = [(arm, rule) for arm in product.arms
                    if (rule := _reference_rule(arm, by_offer, excluded, consented, {"sms"} if cap_sms else set(),
                                                quiet_pairs, {"cross_sell"} if problem else set()))]
        assert [(r.arm, r.rule) for r in decoded] == expected, trial
        _, reasons = split_removed(text)
        if reasons:
            seen_sparse += any(ch.isdigit() for ch in reasons)
            seen_dense += any(seg and not any(ch.isdigit() for ch in seg) for seg in reasons.split(";"))
            assert len(reasons) <= 2 + n_offers + len(formats) * len(slots)  # a character an offer and a pair at most
    assert seen_sparse and seen_dense


def _compact_row(event_id: str, removed: str | None, eligible: bytes | None, pmf: np.ndarray, chosen: int | None,
                 **fields) -> DecisionRow:
    from decision_log import arm_set_code, pmf32_to_blob

    offer_set_id, offer_set_json = encode_offers(CANDIDATES.offers.values())
    arm_set_id, arm_set_text = arm_set_code(offer_set_id, tuple(FORMATS), tuple(SLOTS))
    arm = None if chosen is None else fields.pop("arm")
    values = dict(
        event_id=event_id, campaign="default", decided_at=1000.0, user_key="u" * 32, context_json="{}",
        numeric_json="{}", offer_set_id=offer_set_id, offer_set_json=offer_set_json, arm_set_id=arm_set_id,
        arm_set_text=arm_set_text, eligible=eligible, pmf=pmf32_to_blob(pmf), policy_pmf=None, chosen_index=chosen,
        offer_id=arm.offer_id if arm else "", format=arm.format if arm else "", time_slot=arm.time_slot if arm else "",
        probability=float(pmf[chosen]) if chosen is not None else 1.0, policy_version="bootstrap",
        exploration="explore" if arm else "no_contact", beta=0.0, deferred=False,
        learn_due_at=1010.0 if arm else None, baseline_json=None, no_contact_reason="" if arm else "cap",
        removed=removed, fingerprint=None)
    values.update(fields)
    return DecisionRow(**values)


def test_a_row_the_writer_capped_names_cap_for_the_arms_the_rules_had_left(log_where):
    """The writer's cap inside the commit (decision_log/caps.py) turns the row into no_contact 'cap' with no
    eligible arm: the arms the engine's rules had removed keep their rule, the others read 'cap'."""
    from decision_log import CapLimit, eligible_to_mask

    kept = [i for i, a in enumerate(CANDIDATES.arms) if a.offer_id != "o2" and a.format == "sms"]  # 4 arms
    removed = "4,4,0,0,0;-x;--cc"  # o2 excluded, email without consent (as the engine writes it)
    pmf = np.full(len(kept), 0.25)
    contact = _compact_row("first", None, None, np.full(12, 1 / 12), 0, arm=CANDIDATES.arms[0], user_key="v" * 32)
    with open_log(log_where, writable=True) as log:
        log.insert_decisions([contact]).result(10)
        over = _compact_row("over", removed, eligible_to_mask(np.array(kept), 12), pmf, 1, arm=CANDIDATES.arms[kept[1]],
                            user_key="v" * 32, decided_at=1001.0, caps=(CapLimit("sms", 3600.0, 1),))
        outcome = log.insert_decisions([over]).result(10)
        assert outcome.capped == ("over",)
        stored = log.stored_decision("over")
        assert stored.decision.no_contact_reason == "cap" and stored.removed == RemovalCounts(exclusion=4, consent=4,
                                                                                              cap=4)
        assert [(r.arm, r.rule) for r in stored.removed_arms] == [
            (arm, "excluded" if arm.offer_id == "o2" else "consent" if arm.format == "email" else "cap")
            for arm in CANDIDATES.arms]


def test_compact_rows_from_before_the_reasons_read_derived_or_blank(log_where):
    """Rows the compact log wrote before it kept reasons (counts only): one rule removed arms -> every arm not
    eligible was removed by it; several -> which took which was not logged: rule "". Holdout arms come from the
    row and are named either way."""
    from decision_log import eligible_to_mask

    consent_only = [i for i, a in enumerate(CANDIDATES.arms) if a.format == "sms"]
    two_rules = [i for i, a in enumerate(CANDIDATES.arms) if a.format == "sms" and a.offer_id != "o2"]
    with open_log(log_where, writable=True) as log:
        log.insert_decisions([
            _compact_row("one", "0,6,0,0,0", eligible_to_mask(np.array(consent_only), 12), np.full(6, 1 / 6), 0,
                         arm=CANDIDATES.arms[consent_only[0]]),
            _compact_row("two", "2,4,0,0,0", eligible_to_mask(np.array(two_rules), 12), np.full(4, 0.25), 0,
                         arm=CANDIDATES.arms[two_rules[0]]),
            _compact_row("held", "0,6,0,0,0", eligible_to_mask(np.array(consent_only), 12), np.zeros(0), None,
                         exploration="holdout", no_contact_reason="holdout"),
        ]).result(10)
        one, two, held = (log.stored_decision(e) for e in ("one", "two", "held"))
    assert [(r.arm, r.rule) for r in one.removed_arms] == [(a, "consent") for a in CANDIDATES.arms if a.format == "email"]
    assert [(r.arm, r.rule) for r in two.removed_arms] == [
        (a, "") for i, a in enumerate(CANDIDATES.arms) if i not in two_rules]
    assert [(r.arm, r.rule) for r in held.removed_arms] == [
        (a, "consent" if a.format == "email" else "holdout") for a in CANDIDATES.arms]
