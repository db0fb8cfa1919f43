"""The exploration report read from a real server's decision log, checked against values worked out by
hand from the same log (and from the scenario itself where it fixes them)."""
from __future__ import annotations

import json
import math
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from offers.v1 import decision_pb2 as pb
from offerbandit.errors import InvalidInput, LogNotFound
from offerbandit.reports.exposures import gini
from offerbandit.reports.exploration import (
    exploration_report_from_log,
    exposures_from_log,
    parse_period,
    render_table,
    report_dict,
    report_json,
    reports_by_version,
    reports_over_time,
    version_reports,
)
from tests.fixtures_mlflow import copy_store
from offerbandit.reports.versions import daily_exploration_series
from tests.conftest import OFFERS, make_request

CATEGORY = dict((oid, features["category"]) for oid, features in OFFERS)  # o1 travel, o2 food, o3 tech
WINBACK_WINDOW_S = 0.3
CONFIG = f"""
[campaigns.default]
reward_range = [0.0, 2.0]
[campaigns.winback]
reward_window_seconds = {WINBACK_WINDOW_S}
reward_windows = {{}}
"""


def _decide(stub, user: str, offer_id: str, event_id: str, **fields) -> pb.Decision:
    offer = next(o for o in OFFERS if o[0] == offer_id)
    request = make_request(user=user, offers=[offer], formats=["sms"], slots=["morning"], event_id=event_id, **fields)
    return stub.Decide(request, timeout=10)


def _reward(stub, event_id: str, value: float) -> None:
    assert stub.Reward(pb.RewardRequest(event_id=event_id, value=value), timeout=10).accepted


def _log(data_dir: Path) -> list[sqlite3.Row]:
    con = sqlite3.connect(data_dir / "decisions.db")
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM decisions ORDER BY seq").fetchall()
    finally:
        con.close()


def _wait_until_learned(data_dir: Path, event_ids: set[str], timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(r["learned_at"] is not None for r in _log(data_dir) if r["event_id"] in event_ids):
            return
        time.sleep(0.05)
    raise AssertionError(f"reward windows of {event_ids} did not close")


@pytest.fixture
def scenario(start_server):
    """One server, one log: four customers in two campaigns.

    alice: a1 travel (reward 1), a2 travel (0), a3 food (1), then w1 travel in `winback` (window closes)
    bob:   b1 travel (no reward yet), b2 tech deferred and never activated, b3 tech deferred, activated,
           reward 2
    dave:  w2 food in `winback` (window closes, default reward 0)
    carol: c1 with every offer excluded (no_contact)
    """
    served = start_server(CONFIG)
    stub = served.stub
    decisions = {}
    decisions["a1"] = _decide(stub, "alice", "o1", "a1")
    decisions["a2"] = _decide(stub, "alice", "o1", "a2")
    middle = time.time()
    decisions["a3"] = _decide(stub, "alice", "o2", "a3")
    decisions["b1"] = _decide(stub, "bob", "o1", "b1")
    decisions["b2"] = _decide(stub, "bob", "o3", "b2", deferred=True)
    decisions["b3"] = _decide(stub, "bob", "o3", "b3", deferred=True)
    assert stub.Activate(pb.ActivateRequest(event_id="b3"), timeout=10).activated
    decisions["w1"] = _decide(stub, "alice", "o1", "w1", campaign="winback")
    decisions["w2"] = _decide(stub, "dave", "o2", "w2", campaign="winback")
    request = make_request(user="carol", event_id="c1")
    request.excluded_offers.extend(oid for oid, _ in OFFERS)
    decisions["c1"] = stub.Decide(request, timeout=10)
    for event_id, value in (("a1", 1.0), ("a2", 0.0), ("a3", 1.0), ("b3", 2.0)):
        _reward(stub, event_id, value)
    _wait_until_learned(served.data_dir, {"w1", "w2"})
    return served.data_dir, decisions, middle


# What the scenario fixes, whatever the policy drew.
EXPOSED = ["a1", "a2", "a3", "b1", "b3", "w1", "w2"]
NEW_CATEGORY = {"a1": True, "a2": False, "a3": True, "b1": True, "b3": True, "w1": False, "w2": True}
REWARD = {"a1": 1.0, "a2": 0.0, "a3": 1.0, "b1": None, "b3": 2.0, "w1": 0.0, "w2": 0.0}
USER = {"a1": "alice", "a2": "alice", "a3": "alice", "b1": "bob", "b3": "bob", "w1": "alice", "w2": "dave"}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _same(actual: float, expected: float) -> bool:
    return (math.isnan(actual) and math.isnan(expected)) or math.isclose(actual, expected, rel_tol=1e-12,
                                                                          abs_tol=1e-12)


def _expected(decisions, events: list[str], last_n: int = 10) -> dict[str, float]:
    """The report's values worked out directly from the scenario and the labels the server returned."""
    labels = {e: decisions[e].exploration for e in events}
    n = len(events)
    known = [e for e in events if REWARD[e] is not None]
    users = sorted({USER[e] for e in events})
    offers = {u: {decisions[e].offer_id for e in events if USER[e] == u} for u in users}
    catalogue = {decisions[e].offer_id for e in events}  # each request's only candidate is its offer
    categories_last = {u: {CATEGORY[decisions[e].offer_id] for e in [x for x in events if USER[x] == u][-last_n:]}
                       for u in users}
    exploit = _mean([REWARD[e] for e in known if labels[e] == "exploit"])
    outside = _mean([REWARD[e] for e in known if labels[e] == "explore_outside_history"])
    discoveries = [e for e in events if NEW_CATEGORY[e] and (REWARD[e] or 0) > 0]
    novel = [e for e in events if labels[e] == "explore_outside_history"]
    return {
        "n_decisions": n,
        "n_customers": len(users),
        "share_outside_history": len(novel) / n,
        "share_explore": sum(labels[e] == "explore" for e in events) / n,
        "share_exploit": sum(labels[e] == "exploit" for e in events) / n,
        "catalogue_coverage": _mean([len(offers[u]) / len(catalogue) for u in users]),
        "distinct_categories_last_n": _mean([len(categories_last[u]) for u in users]),
        "discoveries": len(discoveries),
        "discovery_rate_per_decision": len(discoveries) / n,
        "discovery_rate_per_novel_draw": (sum(e in discoveries for e in novel) / len(novel)) if novel else math.nan,
        "mean_reward_exploit": exploit,
        "mean_reward_outside_history": outside,
        "mean_reward_explore": _mean([REWARD[e] for e in known if labels[e] == "explore"]),
        "exploration_cost": exploit - outside,
        "exposure_gini": gini(np.array([sum(decisions[e].offer_id == o for e in events) for o in sorted(catalogue)])),
    }


def _check(report, expected: dict[str, float]) -> None:
    for name, value in expected.items():
        assert _same(float(getattr(report, name)), float(value)), (name, getattr(report, name), value)


def test_the_log_holds_what_the_scenario_says(scenario):
    data_dir, decisions, _ = scenario
    rows = {r["event_id"]: r for r in _log(data_dir)}
    assert decisions["c1"].exploration == "no_contact"
    assert rows["b2"]["activated_at"] is None and rows["b3"]["activated_at"] is not None
    assert rows["w1"]["reward_count"] == 0 and rows["w1"]["learned_at"] is not None
    assert rows["b1"]["reward_count"] == 0 and rows["b1"]["learned_at"] is None
    assert all(decisions[e].offer_id in CATEGORY for e in EXPOSED)


def test_exposures_carry_category_newness_and_known_rewards(scenario):
    data_dir, decisions, _ = scenario
    exposures = exposures_from_log(data_dir)
    assert [e.event_id for e in exposures] == ["a1", "a2", "a3", "b1", "b3", "w1", "w2"]
    by_event = {e.event_id: e for e in exposures}
    for event_id in EXPOSED:
        record = by_event[event_id].exposure
        assert record.new_category == NEW_CATEGORY[event_id], event_id
        assert record.reward == REWARD[event_id], event_id
        assert record.category == CATEGORY[decisions[event_id].offer_id]
        assert record.exploration == decisions[event_id].exploration
        assert (record.offer_id, record.format, record.time_slot) == (decisions[event_id].offer_id, "sms", "morning")
    assert by_event["w1"].campaign == "winback" and by_event["a1"].campaign == "default"
    assert len({by_event[e].exposure.user_key for e in EXPOSED}) == 3
    assert "alice" not in {e.exposure.user_key for e in exposures}  # keyed hashes, never the clear id
    # A deferred decision counts from its activation: b3 is shown after b1 although decided later anyway,
    # and its time is the activation time in the log.
    rows = {r["event_id"]: r for r in _log(data_dir)}
    assert by_event["b3"].exposure.when == rows["b3"]["activated_at"]


def test_report_of_the_whole_log_matches_the_hand_computation(scenario):
    data_dir, decisions, _ = scenario
    report = exploration_report_from_log(data_dir)
    _check(report, _expected(decisions, EXPOSED))
    assert report.discoveries == 3  # a1, a3, b3: a positive answer in a category new to the customer
    assert report.n_decisions == 7 and report.n_customers == 3
    assert math.isclose(report.catalogue_coverage, (2 / 3 + 2 / 3 + 1 / 3) / 3)
    assert math.isclose(report.exposure_gini, gini(np.array([4, 2, 1])))  # o1 x4, o2 x2, o3 x1


@pytest.mark.parametrize("last_n, expected", [(1, 1.0), (2, 5 / 3), (10, 5 / 3)])
def test_distinct_categories_among_the_last_n(scenario, last_n, expected):
    data_dir, _, _ = scenario
    assert math.isclose(exploration_report_from_log(data_dir, last_n=last_n).distinct_categories_last_n, expected)


def test_campaign_filter_keeps_newness_across_campaigns(scenario):
    data_dir, decisions, _ = scenario
    default = exploration_report_from_log(data_dir, campaign="default")
    _check(default, _expected(decisions, ["a1", "a2", "a3", "b1", "b3"]))
    winback = exploration_report_from_log(data_dir, campaign="winback")
    _check(winback, _expected(decisions, ["w1", "w2"]))
    assert winback.discoveries == 0  # w1 is travel, shown to alice in the default campaign; w2 got reward 0
    assert exploration_report_from_log(data_dir, campaign="nope").n_decisions == 0


def test_since_reads_the_history_before_the_window(scenario):
    data_dir, decisions, middle = scenario
    report = exploration_report_from_log(data_dir, since=middle)
    later = ["a3", "b1", "b3", "w1", "w2"]
    _check(report, _expected(decisions, later))
    exposures = {e.event_id: e.exposure for e in exposures_from_log(data_dir, since=middle)}
    assert sorted(exposures) == sorted(later)
    assert exposures["w1"].new_category is False  # travel was shown to alice before `since`
    assert exploration_report_from_log(data_dir, since=time.time() + 3600).n_decisions == 0


def test_short_horizon_makes_old_categories_new_again(scenario):
    data_dir, _, _ = scenario
    rows = {r["event_id"]: r for r in _log(data_dir)}
    gap = rows["w1"]["decided_at"] - rows["a2"]["decided_at"]
    assert gap > 0
    exposures = {e.event_id: e.exposure for e in exposures_from_log(data_dir, horizon_s=gap / 2)}
    assert exposures["w1"].new_category is True
    assert exposures["a2"].new_category is (rows["a2"]["decided_at"] - rows["a1"]["decided_at"] > gap / 2)


def test_by_version_and_policy_version_filter(scenario):
    data_dir, decisions, _ = scenario
    versions = reports_by_version(data_dir)
    assert list(versions) == ["bootstrap"]
    _check(versions["bootstrap"], _expected(decisions, EXPOSED))
    same = exploration_report_from_log(data_dir, policy_version="bootstrap")
    assert report_dict(same) == report_dict(versions["bootstrap"])  # NaN-safe equality
    assert exploration_report_from_log(data_dir, policy_version="7").n_decisions == 0
    by_campaign = reports_by_version(data_dir, campaign="winback")
    _check(by_campaign["bootstrap"], _expected(decisions, ["w1", "w2"]))


@pytest.mark.parametrize("every_s", [0.001, 0.05, 0.5])
def test_over_time_reports_each_period_like_the_hand_computation(scenario, every_s):
    data_dir, decisions, _ = scenario
    when = {e.event_id: e.exposure.when for e in exposures_from_log(data_dir)}
    periods: dict[float, list[str]] = {}
    for event_id in EXPOSED:  # exposures_from_log gives them in time order
        periods.setdefault(math.floor(when[event_id] / every_s) * every_s, []).append(event_id)
    reports = reports_over_time(data_dir, every_s=every_s)
    assert len(reports) == len(periods)
    assert sum(r.n_decisions for r in reports.values()) == len(EXPOSED)
    for label, (start, events) in zip(reports, sorted(periods.items())):
        labelled = datetime.fromisoformat(label.replace("Z", "+00:00")).timestamp()
        assert abs(labelled - start) < 0.001 and label.endswith("Z") and len(label) == len("2026-01-01T00:00:00.000Z")
        # "new category" still looks at the customer's whole past, not only at the period
        _check(reports[label], _expected(decisions, events))


def test_over_time_with_filters_and_a_day_period(scenario):
    data_dir, decisions, middle = scenario
    days = reports_over_time(data_dir, every_s=86_400, campaign="default", since=middle)
    assert all(label.endswith("T00:00Z") for label in days)
    assert sum(r.n_decisions for r in days.values()) == 3  # a3, b1, b3
    assert sum(r.discoveries for r in days.values()) == 2  # a3 (food, new to alice) and b3 (tech, new to bob)
    assert reports_over_time(data_dir, every_s=86_400, policy_version="7") == {}
    single = reports_over_time(data_dir, every_s=10 * 365 * 86_400)
    assert len(single) == 1
    assert report_dict(next(iter(single.values()))) == report_dict(exploration_report_from_log(data_dir))
    table = render_table(days, key_header="period (UTC)")
    assert table.columns[0].header == "period (UTC)" and table.row_count == len(days)


@pytest.mark.parametrize("every_s", [0, 0.0005, -1.0, float("nan"), float("inf"), True, "1d", None])
def test_over_time_rejects_a_bad_period(tmp_path, every_s):
    with pytest.raises(InvalidInput) as info:
        reports_over_time(tmp_path, every_s=every_s)
    assert info.value.field == "every_s"


@pytest.mark.parametrize("text, seconds", [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("1.5h", 5400.0),
                                           ("1d", 86_400.0), (" 2w ", 1_209_600.0), ("6 h", 21_600.0)])
def test_parse_period(text, seconds):
    assert parse_period(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0d", "-1d", "1y", "d", "one day", "1e3", None, 86400])
def test_parse_period_rejects_what_is_not_a_period(text):
    with pytest.raises(InvalidInput) as info:
        parse_period(text)
    assert info.value.field == "every" and "1d" in str(info.value)


def test_json_is_strict_and_round_trips_the_numbers(scenario):
    data_dir, _, _ = scenario
    versions = reports_by_version(data_dir)
    parsed = json.loads(report_json(versions))
    assert list(parsed) == ["bootstrap"]
    report = versions["bootstrap"]
    for name, value in parsed["bootstrap"].items():
        expected = getattr(report, name)
        assert (value is None and math.isnan(expected)) or value == expected, name
    single = json.loads(report_json(report, indent=None))
    assert single == parsed["bootstrap"]
    empty = json.loads(report_json(exploration_report_from_log(data_dir, campaign="nope")))
    assert empty["n_decisions"] == 0 and empty["share_exploit"] is None


def test_table_has_one_row_per_version_with_the_numbers(scenario):
    data_dir, _, _ = scenario
    versions = reports_by_version(data_dir)
    table = render_table(versions, title="default")
    assert table.row_count == 1
    console = Console(width=400, record=True)
    console.print(table)
    text = console.export_text()
    assert "bootstrap" in text and "exposures" in text
    assert f"{100 * versions['bootstrap'].share_exploit:.1f}%" in text
    empty = render_table(exploration_report_from_log(data_dir, campaign="nope"))
    console.print(empty)
    assert "-" in console.export_text()  # undefined values show as '-'


def test_versions_come_apart_after_a_checkpoint(start_server, tmp_path, mlflow_template_store):
    data_dir = tmp_path / "data"
    copy_store(mlflow_template_store, data_dir)
    served = start_server("[learning]\nregistry_poll_seconds = 0.2\ncheckpoint_every_seconds = 3600\n",
                          data_dir=data_dir, start_registry=True)
    before = [served.stub.Decide(make_request(user=f"u{i}"), timeout=10) for i in range(4)]
    for decision in before:
        served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10)
    version = served.server.registry.checkpoint("default")
    after = [served.stub.Decide(make_request(user=f"u{i}"), timeout=10) for i in range(6)]
    assert {d.policy_version for d in before} == {"bootstrap"}
    assert {d.policy_version for d in after} == {version}
    versions = reports_by_version(data_dir)
    assert list(versions) == ["bootstrap", version]
    assert (versions["bootstrap"].n_decisions, versions[version].n_decisions) == (4, 6)
    shown: set[tuple[str, str]] = set()
    expected_new = {}
    for i, decision in enumerate(before + after):
        key = (f"u{i % 4 if i < 4 else i - 4}", CATEGORY[decision.offer_id])
        expected_new[decision.event_id] = key not in shown
        shown.add(key)
    assert {e.event_id: e.exposure.new_category for e in exposures_from_log(data_dir)} == expected_new
    assert versions[version].discoveries == 0  # no rewards after the checkpoint
    assert versions["bootstrap"].discoveries == 4  # every first exposure answered positively

    # What lands in MLflow per day: each UTC day's report of each version, one step per day it served.
    exposures = exposures_from_log(data_dir)
    for name, report in versions.items():
        days = sorted({e.exposure.when // 86_400 * 86_400 for e in exposures if e.policy_version == name})
        points = daily_exploration_series([e for e in exposures if e.policy_version == name])
        assert {(p.step, p.timestamp_s) for p in points} == set(enumerate(days))
        assert all(p.key.startswith("exploration_daily.") for p in points)
        if len(days) == 1:  # the test did not straddle midnight UTC: the day is the whole version
            assert {p.key: p.value for p in points} == report.as_metrics(prefix="exploration_daily.")
    assert daily_exploration_series([]) == []
    assert report_dict(version_reports(exposures)[version]) == report_dict(versions[version])


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"last_n": 0}, "last_n"),
        ({"last_n": 2.5}, "last_n"),
        ({"last_n": True}, "last_n"),
        ({"since": float("nan")}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"horizon_s": 0.0}, "horizon_s"),
        ({"horizon_s": float("inf")}, "horizon_s"),
        ({"horizon_s": -5}, "horizon_s"),
    ],
)
def test_invalid_options_name_the_field(tmp_path, kwargs, field):
    data_dir = tmp_path  # options are checked before the log is opened
    with pytest.raises(InvalidInput) as info:
        exploration_report_from_log(data_dir, **kwargs)
    assert info.value.field == field
    with pytest.raises(InvalidInput):
        reports_by_version(data_dir, **kwargs)


def test_missing_log_is_not_found(tmp_path):
    with pytest.raises(LogNotFound):
        exploration_report_from_log(tmp_path / "empty")
    with pytest.raises(InvalidInput):
        render_table({"v": "not a report"})


def test_holdout_contacts_are_not_the_policys_exposures(start_server):
    """The baseline served to the control group is history (it makes a category known), not an exposure the
    policy chose: the exploration report leaves it out instead of refusing its label."""
    served = start_server('[privacy]\nuser_hash_key = "holdout-exposures-key-0001"\n'
                          '[campaigns.default]\nholdout = 0.5\nholdout_treatment = "baseline"\n')
    baseline = pb.Arm(offer_id="o1", format="sms", time_slot="morning")
    decisions = [served.stub.Decide(make_request(user=f"h{i}", baseline=baseline), timeout=10) for i in range(40)]
    held = [d for d in decisions if d.exploration == "holdout"]
    assert held and all(d.offer_id == "o1" for d in held)
    exposures = exposures_from_log(served.data_dir)
    assert sorted(e.event_id for e in exposures) == sorted(d.event_id for d in decisions if d.exploration != "holdout")
    assert report_dict(exploration_report_from_log(served.data_dir))["n_decisions"] == len(exposures)
