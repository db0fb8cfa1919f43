"""Lift over the holdout: the cluster-robust interval covers a known lift (not too narrow, not too wide),
the log's settled rewards feed it, and ``offerbandit lift --json`` prints the contract's object."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from decision_log import LiftOutcome
from offers.v1 import decision_pb2 as pb
from offerbandit.reports.lift import JSON_FIELDS, group_mean, lift_of
from tests.conftest import OFFERBANDIT, make_request


def _world(rng: np.random.Generator, lift: float, customers: int = 300) -> list[LiftOutcome]:
    """Customers with their own base rate (so their decisions are correlated) and 1-12 decisions each;
    a third held out; the treated respond ``lift`` more often."""
    outcomes = []
    for i in range(customers):
        held = rng.random() < 1 / 3
        base = rng.beta(2, 8)
        rate = base if held else min(base + lift, 1.0)
        for _ in range(int(rng.integers(1, 13))):
            outcomes.append(LiftOutcome(f"c{i}", held, float(rng.random() < rate)))
    return outcomes


def test_the_group_mean_is_the_ratio_over_customers_with_the_cluster_variance():
    found = group_mean({"a": (1.0, 2), "b": (3.0, 3), "c": (0.0, 1)})
    assert found.mean == pytest.approx(4.0 / 6.0) and (found.decisions, found.customers) == (6, 3)
    residuals = np.array([1.0 - 2 * 4 / 6, 3.0 - 3 * 4 / 6, 0.0 - 1 * 4 / 6])
    assert found.variance == pytest.approx(3 / 2 * (residuals ** 2).sum() / 36)
    assert group_mean({"a": (1.0, 4)}).variance is None and group_mean({}).mean is None


def test_the_interval_covers_a_known_lift_about_95_percent_of_the_time_and_is_not_too_wide():
    true_lift = 0.1
    covered, widths, estimates = 0, [], []
    for seed in range(300):
        report = lift_of("c", _world(np.random.default_rng(seed), true_lift))
        covered += report.ci_low <= true_lift <= report.ci_high
        widths.append(report.ci_high - report.ci_low)
        estimates.append(report.lift)
    coverage = covered / 300
    assert 0.91 <= coverage <= 0.985, coverage  # binomial bounds around 0.95 for 300 worlds
    spread = 2 * 1.96 * np.std(estimates)  # the width an exact interval would have
    assert 0.8 * spread <= np.mean(widths) <= 1.25 * spread, (np.mean(widths), spread)


def test_an_interval_over_decisions_would_be_too_narrow_for_customers_with_habits():
    """Why the customer is the unit: treating decisions as independent covers far less than 95% here."""
    naive_covered = 0
    for seed in range(200):
        outcomes = _world(np.random.default_rng(1000 + seed), 0.1)
        treated = np.array([o.reward for o in outcomes if not o.held_out])
        holdout = np.array([o.reward for o in outcomes if o.held_out])
        half = 1.96 * np.sqrt(treated.var(ddof=1) / len(treated) + holdout.var(ddof=1) / len(holdout))
        naive_covered += abs(treated.mean() - holdout.mean() - 0.1) <= half
    assert naive_covered / 200 < 0.9


def test_no_holdout_means_no_lift():
    report = lift_of("c", [LiftOutcome("a", False, 1.0), LiftOutcome("b", False, 0.0)])
    assert report.lift is None and report.ci_low is None and report.treated_mean_reward == 0.5


def test_lift_json_through_a_real_server(start_server):
    served = start_server('[privacy]\nuser_hash_key = "lift-e2e-test-key-000001"\n'
                          '[campaigns.default]\nholdout = 0.3\n')
    rng = np.random.default_rng(5)
    decisions = []
    for start in range(0, 900, 100):
        response = served.stub.DecideBatch(pb.DecideBatchRequest(requests=[
            make_request(user=f"lift-{i % 300}") for i in range(start, start + 100)]), timeout=30)
        decisions.extend(response.decisions)
    open_windows = 0
    for decision in decisions:
        if decision.exploration != "holdout" and rng.random() < 0.1:
            open_windows += 1  # never rewarded, window (1 h for sms, 3 days for email) still open: left out
            continue
        rate = 0.05 if decision.exploration == "holdout" else 0.25
        served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=float(rng.random() < rate)),
                           timeout=10)
    done = subprocess.run([OFFERBANDIT, "lift", "--data-dir", str(served.data_dir), "--json"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (report,) = json.loads(done.stdout)["campaigns"]
    assert tuple(report) == JSON_FIELDS and report["campaign"] == "default"
    held = sum(d.exploration == "holdout" for d in decisions)
    # holdout no_contact decisions have a 1-day window: rewarded ones are final, all of them were rewarded
    assert report["holdout_decisions"] == held
    assert report["treated_decisions"] == len(decisions) - held - open_windows
    assert report["holdout_mean_reward"] < report["treated_mean_reward"]
    assert report["ci_low"] < 0.2 < report["ci_high"] and report["ci_high"] - report["ci_low"] < 0.25
    assert report["lift"] == pytest.approx(report["treated_mean_reward"] - report["holdout_mean_reward"])
    table = subprocess.run([OFFERBANDIT, "lift", "--data-dir", str(served.data_dir)], capture_output=True, text=True,
                           timeout=120)
    assert table.returncode == 0 and "default" in table.stdout and "lift" in table.stdout
