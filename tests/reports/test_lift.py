"""Lift over the holdout: the cluster-robust interval covers a known lift (not too narrow, not too wide),
the log's settled rewards feed it, and ``offerbandit lift --json`` prints the contract's object."""
from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timezone

import numpy as np
import pytest

from decision_log import LiftOutcome, open_log
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


WINDOW_S = 20.0  # long enough (on 2 busy cores) for the rewards and the first `lift` to come before any window closes
SHORT_WINDOWS = (f"reward_window_seconds = {WINDOW_S:g}\n"
                 f"reward_windows = {{ sms = {WINDOW_S:g}, email = {WINDOW_S:g} }}\n")


def _lift_json(data_dir, *extra: str) -> dict:
    done = subprocess.run([OFFERBANDIT, "lift", "--data-dir", str(data_dir), "--json", *extra], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_lift_json_through_a_real_server(start_server, tmp_path):
    """A decision enters lift once its window closed, rewarded early or not: right after the rewards nothing
    counts (counting the early rewards alone, as lift once did, would report only responders); once the
    windows closed every decision counts, the unrewarded ones with the default reward."""
    config = tmp_path / "lift.toml"
    config.write_text('[privacy]\nuser_hash_key = "lift-e2e-test-key-000001"\n'
                      f'[campaigns.default]\nholdout = 0.3\n{SHORT_WINDOWS}')
    served = start_server(config.read_text())
    rng = np.random.default_rng(5)
    decisions = []
    started = time.time()
    for start in range(0, 900, 100):
        response = served.stub.DecideBatch(pb.DecideBatchRequest(requests=[
            make_request(user=f"lift-{i % 300}") for i in range(start, start + 100)]), timeout=30)
        decisions.extend(response.decisions)
    last_decided = time.time()
    rewards, pending = {False: 0.0, True: 0.0}, []
    for decision in decisions:
        if len(pending) == 100:  # in flight at once: below the server's concurrent-RPC limit
            assert all(f.result().accepted for f in pending)
            pending.clear()
        if decision.exploration != "holdout" and rng.random() < 0.1:
            continue  # never rewarded: counts the default reward (0) once its window closed
        rate = 0.05 if decision.exploration == "holdout" else 0.25
        value = float(rng.random() < rate)
        rewards[decision.exploration == "holdout"] += value
        pending.append(served.stub.Reward.future(pb.RewardRequest(event_id=decision.event_id, value=value),
                                                 timeout=10))
    assert all(f.result().accepted for f in pending)
    (early,) = _lift_json(served.data_dir, "--config", str(config))["campaigns"]
    assert time.time() - started < WINDOW_S, "too slow: windows closed before the first lift"
    assert early["treated_decisions"] == early["holdout_decisions"] == 0, early  # every window is still open
    time.sleep(max(0.0, last_decided + WINDOW_S + 0.5 - time.time()))
    (report,) = _lift_json(served.data_dir, "--config", str(config))["campaigns"]
    assert tuple(report) == JSON_FIELDS and report["campaign"] == "default"
    held = sum(d.exploration == "holdout" for d in decisions)
    assert report["holdout_decisions"] == held and report["treated_decisions"] == len(decisions) - held
    assert report["treated_mean_reward"] == pytest.approx(rewards[False] / (len(decisions) - held))
    assert report["holdout_mean_reward"] == pytest.approx(rewards[True] / held)
    assert report["holdout_mean_reward"] < report["treated_mean_reward"]
    true_lift = 0.9 * 0.25 - 0.05  # a tenth of the treated never answered: the default reward 0
    assert report["ci_low"] < true_lift < report["ci_high"] and report["ci_high"] - report["ci_low"] < 0.25
    assert report["lift"] == pytest.approx(report["treated_mean_reward"] - report["holdout_mean_reward"])
    table = subprocess.run([OFFERBANDIT, "lift", "--data-dir", str(served.data_dir), "--config", str(config)],
                           capture_output=True, text=True, timeout=120)
    assert table.returncode == 0 and "default" in table.stdout and "lift" in table.stdout
    with open_log(served.data_dir) as log:
        times = [d.decided_at for d in log.decisions()]
    first, last = (datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
                   for t in (min(times), max(times)))
    assert f"default: covers decisions from {first} to {last}" in " ".join(table.stdout.split())
