"""Contact rules: exclusions, consent, frequency caps, quiet hours, suppression, and their bookkeeping."""
from __future__ import annotations

import numpy as np
import pytest

from offerbandit.errors import InvalidInput
from policies.history import HistoryConfig, UserHistory, UserHistoryStore
from policies.rules import (
    OPEN_SERVICE_PROBLEM,
    FrequencyCap,
    QuietHours,
    RulesConfig,
    SuppressionRule,
    apply_rules,
)
from policies.types import ArmSet, DecisionContext, JointArm, Offer

OFFERS = [
    Offer("loan", {"category": "credit", "offer_type": "cross_sell"}),
    Offer("card", {"category": "credit", "offer_type": "upsell"}),
    Offer("tips", {"category": "content", "offer_type": "service"}),
]
ARMS = ArmSet.product(OFFERS, ["sms", "email"], ["morning", "night"])  # 12 arms
CONTEXT = DecisionContext(user_key="u")
NEW = UserHistory.empty(1000.0)


def _history(contacts: list[tuple[float, str]], now: float) -> UserHistory:
    store = UserHistoryStore(HistoryConfig(horizon_s=10_000.0))
    for i, (when, fmt) in enumerate(contacts):
        store.record_contact("u", event_id=f"e{i}", when=when, arm=JointArm("loan", fmt, "morning"),
                             category="credit", counts=True)
    return store.snapshot("u", now)


def _kept(eligibility) -> set[tuple[str, str, str]]:
    return {(a.offer_id, a.format, a.time_slot) for a in eligibility.arm_set.arms}


def test_default_rules_keep_everything_in_order():
    result = apply_rules(ARMS, CONTEXT, NEW, 1000.0, RulesConfig())
    assert result.arm_set is ARMS  # nothing removed: the same object, so per-arm-set caches still hit
    assert result.kept.tolist() == list(range(len(ARMS)))
    assert result.removed.total == 0
    assert not result.is_empty


def test_kept_indices_map_back_and_order_is_preserved():
    result = apply_rules(ARMS, CONTEXT, NEW, 1000.0, RulesConfig(), excluded_offers=frozenset({"card"}))
    assert [ARMS.arms[i] for i in result.kept] == list(result.arm_set.arms)
    assert list(result.kept) == sorted(result.kept)
    assert set(result.arm_set.offers) == {"loan", "tips"}
    assert result.removed.exclusion == 4


def test_consent_removes_formats_not_consented():
    result = apply_rules(ARMS, CONTEXT, NEW, 1000.0, RulesConfig(), consented_formats=frozenset({"email"}))
    assert {a.format for a in result.arm_set.arms} == {"email"}
    assert result.removed.consent == 6
    none = apply_rules(ARMS, CONTEXT, NEW, 1000.0, RulesConfig(), consented_formats=frozenset())
    assert none.is_empty and none.removed.consent == 12


def test_cap_per_format_blocks_that_format_until_the_window_passes():
    rules = RulesConfig(caps=(FrequencyCap("sms", max_contacts=2, window_s=100.0),))
    history = _history([(950.0, "sms"), (990.0, "sms"), (995.0, "email")], now=1000.0)
    capped = apply_rules(ARMS, CONTEXT, history, 1000.0, rules)
    assert {a.format for a in capped.arm_set.arms} == {"email"}
    assert capped.removed.cap == 6
    # At 1050 the contact at 950 has left the window: one sms contact in it, under the cap of 2.
    history_later = _history([(950.0, "sms"), (990.0, "sms"), (995.0, "email")], now=1050.0)
    released = apply_rules(ARMS, CONTEXT, history_later, 1050.0, rules)
    assert released.removed.cap == 0 and len(released.arm_set) == 12


def test_cap_on_any_format_counts_all_formats():
    rules = RulesConfig(caps=(FrequencyCap("*", max_contacts=2, window_s=100.0),))
    one_each = _history([(990.0, "sms"), (995.0, "email")], now=1000.0)
    result = apply_rules(ARMS, CONTEXT, one_each, 1000.0, rules)
    assert result.is_empty and result.removed.cap == 12
    just_one = _history([(990.0, "sms")], now=1000.0)
    assert apply_rules(ARMS, CONTEXT, just_one, 1000.0, rules).removed.cap == 0


def test_zero_cap_blocks_a_format_outright():
    rules = RulesConfig(caps=(FrequencyCap("email", max_contacts=0, window_s=1.0),))
    result = apply_rules(ARMS, CONTEXT, NEW, 1000.0, rules)
    assert {a.format for a in result.arm_set.arms} == {"sms"}


def test_quiet_hours_use_the_slot_hours():
    rules = RulesConfig(quiet_hours=(QuietHours("sms", start_hour=21, end_hour=23.5),))
    result = apply_rules(ARMS, CONTEXT, NEW, 1000.0, rules)  # night = 23h
    assert ("loan", "sms", "night") not in _kept(result)
    assert ("loan", "email", "night") in _kept(result)
    assert ("loan", "sms", "morning") in _kept(result)
    assert result.removed.quiet_hours == 3


@pytest.mark.parametrize(
    "start, end, hour, quiet",
    [
        (22, 7, 23, True), (22, 7, 0, True), (22, 7, 6.99, True), (22, 7, 7, False), (22, 7, 21.5, False),
        (22, 7, 22, True), (9, 17, 8, False), (9, 17, 9, True), (9, 17, 17, False), (0, 12, 11.5, True),
        (23, 0, 23.5, True), (23, 0, 0, False),
    ],
)
def test_quiet_hours_window_including_wrap_past_midnight(start, end, hour, quiet):
    assert QuietHours("*", start, end).covers(hour) is quiet


def test_quiet_hours_wrapping_midnight_remove_night_arms_for_any_format():
    rules = RulesConfig(quiet_hours=(QuietHours("*", 22, 7),), slot_hours={"morning": 8, "night": 2})
    result = apply_rules(ARMS, CONTEXT, NEW, 1000.0, rules)
    assert {a.time_slot for a in result.arm_set.arms} == {"morning"}
    assert result.removed.quiet_hours == 6


def test_unknown_slot_under_quiet_hours_is_a_config_error():
    arms = ArmSet.product(OFFERS[:1], ["sms"], ["dawn"])
    rules = RulesConfig(quiet_hours=(QuietHours("sms", 22, 7),))
    with pytest.raises(InvalidInput) as info:
        apply_rules(arms, CONTEXT, NEW, 1000.0, rules)
    assert "dawn" in str(info.value)
    # Without a rule for that format the slot needs no hour.
    assert len(apply_rules(arms, CONTEXT, NEW, 1000.0, RulesConfig(quiet_hours=(QuietHours("email", 22, 7),))
                           ).arm_set) == 1


def test_suppression_applies_only_when_the_context_matches():
    rules = RulesConfig(suppressions=(OPEN_SERVICE_PROBLEM,))
    problem = DecisionContext(user_key="u", context={"open_service_problem": "true"})
    result = apply_rules(ARMS, problem, NEW, 1000.0, rules)
    assert {a.offer_id for a in result.arm_set.arms} == {"tips"}
    assert result.removed.suppression == 8
    calm = DecisionContext(user_key="u", context={"open_service_problem": "false"})
    assert apply_rules(ARMS, calm, NEW, 1000.0, rules).removed.total == 0


def test_each_removed_arm_is_counted_once_under_the_first_reason():
    rules = RulesConfig(
        caps=(FrequencyCap("email", 0, 60.0),),
        quiet_hours=(QuietHours("*", 22, 7),),
        suppressions=(SuppressionRule("segment", "vip", "category", frozenset({"credit"})),),
    )
    vip = DecisionContext(user_key="u", context={"segment": "vip"})
    result = apply_rules(ARMS, vip, NEW, 1000.0, rules, excluded_offers=frozenset({"loan"}),
                         consented_formats=frozenset({"sms", "email"}))
    removed = result.removed
    # loan: 4 excluded. card+tips email: 4 capped. card+tips sms night: 2 quiet. card sms morning: suppressed.
    assert (removed.exclusion, removed.consent, removed.cap, removed.quiet_hours, removed.suppression) == (4, 0, 4, 2, 1)
    assert _kept(result) == {("tips", "sms", "morning")}
    assert removed.total + len(result.arm_set) == len(ARMS)


def test_all_arms_removed_gives_an_empty_arm_set():
    result = apply_rules(ARMS, CONTEXT, NEW, 1000.0, RulesConfig(),
                         excluded_offers=frozenset(o.id for o in OFFERS))
    assert result.is_empty
    assert len(result.arm_set) == 0 and result.arm_set.arms == () and dict(result.arm_set.offers) == {}
    assert result.kept.shape == (0,) and result.kept.dtype == np.int64
    assert result.removed.exclusion == 12


def test_empty_arm_set_in_gives_empty_out():
    result = apply_rules(ArmSet(arms=(), offers={}), CONTEXT, NEW, 1000.0, RulesConfig())
    assert result.is_empty and result.removed.total == 0


def test_longest_cap_window():
    assert RulesConfig().longest_cap_window_s == 0.0
    rules = RulesConfig(caps=(FrequencyCap("sms", 1, 10.0), FrequencyCap("*", 3, 500.0)))
    assert rules.longest_cap_window_s == 500.0


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: FrequencyCap("sms", -1, 10.0), "max_contacts"),
        (lambda: FrequencyCap("sms", 1.5, 10.0), "max_contacts"),
        (lambda: FrequencyCap("sms", 1, 0.0), "window_s"),
        (lambda: FrequencyCap("sms", 1, float("inf")), "window_s"),
        (lambda: FrequencyCap("", 1, 10.0), "format"),
        (lambda: QuietHours("sms", -1, 7), "start_hour"),
        (lambda: QuietHours("sms", 25, 7), "start_hour"),
        (lambda: QuietHours("sms", 22, 24.5), "end_hour"),
        (lambda: QuietHours("sms", 22, float("nan")), "end_hour"),
        (lambda: QuietHours("sms", 7, 7), "end_hour"),
        (lambda: QuietHours("sms", 0, 24), "end_hour"),
        (lambda: QuietHours("sms", "22", 7), "start_hour"),
        (lambda: SuppressionRule("", "true", "offer_type", frozenset({"upsell"})), "context_key"),
        (lambda: SuppressionRule("k", "true", "offer_type", frozenset()), "feature_values"),
        (lambda: SuppressionRule("k", "true", "offer_type", "upsell"), "feature_values"),
        (lambda: RulesConfig(caps=("sms",)), "caps"),
        (lambda: RulesConfig(quiet_hours=(FrequencyCap("sms", 1, 1.0),)), "quiet_hours"),
        (lambda: RulesConfig(slot_hours={"morning": 30}), "slot_hours"),
        (lambda: RulesConfig(slot_hours={"": 8}), "slot_hours"),
    ],
)
def test_invalid_rules_config_names_the_field(build, field):
    with pytest.raises(InvalidInput) as info:
        build()
    assert info.value.field == field
