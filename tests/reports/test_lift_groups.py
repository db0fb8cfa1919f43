"""Lift per serving version and per period: exact groups from a seeded run through a real server, the same
numbers on each version's MLflow run (metrics, description, chart) recorded by the publishing process, and
the grouping rules on their own."""
from __future__ import annotations

import calendar
import json
import math
import sqlite3
import subprocess
import time
from collections import Counter, defaultdict

import numpy as np
import pytest

from decision_log import LiftOutcome
from offerbandit.reports.exploration import parse_period
from offerbandit.reports.lift import JSON_FIELDS, grouped_lift, lift_of
from offers.v1 import decision_pb2 as pb
from policy_registry import PolicyRegistry, RegistryConfig
from tests.conftest import OFFERBANDIT, make_request
from tests.fixtures_mlflow import copy_store
from tests.waiting import wait_for

WINDOW_S = 2.0
CONFIG = f"""
[privacy]
user_hash_key = "lift-groups-test-key-0001"
[learning]
registry_poll_seconds = 0.2
checkpoint_every_events = 60
checkpoint_every_seconds = 1
[campaigns.default]
holdout = 0.3
reward_window_seconds = {WINDOW_S:g}
reward_windows = {{ sms = {WINDOW_S:g}, email = {WINDOW_S:g} }}
"""
GROUP_FIELDS = ("policy_version", "period_start", "period_end", *JSON_FIELDS)


def _lift(data_dir, config, *extra: str) -> dict:
    done = subprocess.run([OFFERBANDIT, "lift", "--data-dir", str(data_dir), "--config", str(config), *extra],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if "--json" in extra else done.stdout


def _serve_three_versions(served, rng: np.random.Generator) -> list[tuple[pb.Decision, float]]:
    """Traffic until three versions served: bootstrap, then each checkpoint in turn; every decision rewarded
    (treated 0.3, holdout 0.1). Returns each decision with the reward it got."""
    out: list[tuple[pb.Decision, float]] = []
    live = served.engine.campaigns["default"].live
    for phase in range(3):
        before = live.version
        for _ in range(2):
            users = [f"g-{int(u)}" for u in rng.integers(0, 120, size=50)]
            response = served.stub.DecideBatch(pb.DecideBatchRequest(requests=[make_request(user=u) for u in users]),
                                               timeout=30)
            pending = []
            for decision in response.decisions:
                value = float(rng.random() < (0.1 if decision.exploration == "holdout" else 0.3))
                out.append((decision, value))
                pending.append(served.stub.Reward.future(pb.RewardRequest(event_id=decision.event_id, value=value),
                                                         timeout=10))
            assert all(f.result().accepted for f in pending)
        if phase < 2:
            wait_for(lambda: live.version != before, timeout=60, what=f"checkpoint {phase + 1} to be served")
    return out


def _expected(decisions: list[tuple[pb.Decision, float]]) -> dict[str, dict[bool, list[float]]]:
    by: dict[str, dict[bool, list[float]]] = defaultdict(lambda: {False: [], True: []})
    for decision, value in decisions:
        by[decision.policy_version][decision.exploration == "holdout"].append(value)
    return by


@pytest.mark.slow
def test_lift_by_version_and_period_through_a_real_server_and_on_each_versions_run(
        start_server, tmp_path, mlflow_template_store):
    data_dir = tmp_path / "data"
    copy_store(mlflow_template_store, data_dir)
    config = tmp_path / "lift.toml"
    config.write_text(CONFIG)
    served = start_server(CONFIG, data_dir=data_dir, start_registry=True)
    decisions = _serve_three_versions(served, np.random.default_rng(11))
    time.sleep(WINDOW_S + 0.5)  # every window closed
    expected = _expected(decisions)
    assert len(expected) == 3 and "bootstrap" in expected

    (campaign,) = _lift(data_dir, config, "--by-version", "--json")["campaigns"]
    assert campaign["treated_decisions"] + campaign["holdout_decisions"] == len(decisions) == 300
    groups = {g["policy_version"]: g for g in campaign["groups"]}
    assert list(groups) == sorted(expected, key=lambda v: (v.isdigit(), int(v) if v.isdigit() else 0))
    for version, cells in expected.items():
        group = groups[version]
        assert tuple(group) == GROUP_FIELDS and group["period_start"] is None and group["period_end"] is None
        assert (group["treated_decisions"], group["holdout_decisions"]) == (len(cells[False]), len(cells[True]))
        assert group["treated_mean_reward"] == pytest.approx(np.mean(cells[False]))
        assert group["holdout_mean_reward"] == pytest.approx(np.mean(cells[True]))
        assert group["lift"] == pytest.approx(np.mean(cells[False]) - np.mean(cells[True]))
        assert group["ci_low"] < group["lift"] < group["ci_high"]

    con = sqlite3.connect(data_dir / "decisions.db")
    rows = con.execute("SELECT decided_at, exploration, policy_version FROM decisions").fetchall()
    con.close()
    for every, seconds in (("1h", 3600), ("1d", 86400)):
        (by_period,) = _lift(data_dir, config, "--every", every, "--json")["campaigns"]
        counted = Counter(math.floor(t / seconds) * seconds for t, _, _ in rows)
        found = {calendar.timegm(time.strptime(g["period_start"], "%Y-%m-%dT%H:%M:%SZ")):
                 g["treated_decisions"] + g["holdout_decisions"] for g in by_period["groups"]}
        assert found == counted and all(g["policy_version"] is None for g in by_period["groups"])
    (both,) = _lift(data_dir, config, "--by-version", "--every", "1d", "--json")["campaigns"]
    assert Counter((g["policy_version"], g["period_start"]) for g in both["groups"]).keys() == {
        (v, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.floor(t / 86400) * 86400))) for t, _, v in rows}
    table = _lift(data_dir, config, "--by-version", "--every", "6h")
    assert "Per group" in table and "bootstrap" in table

    # the publishing process put each registered version's numbers on the run that published it
    from mlflow import MlflowClient

    registry = PolicyRegistry(RegistryConfig.for_data_dir(data_dir))
    client = MlflowClient(tracking_uri=registry.config.tracking_uri, registry_uri=registry.config.tracking_uri)
    for version in (v for v in expected if v.isdigit()):
        run_id = client.get_model_version(registry.model_name("default"), version).run_id
        cells, group = expected[version], groups[version]

        def recorded(run_id=run_id, cells=cells, group=group):
            # the metrics, then the note, then the figures (record_live_results): on busy cores a read between
            # two of them saw the metrics without the note
            run = client.get_run(run_id)
            metrics, note = run.data.metrics, run.data.tags.get("mlflow.note.content", "")
            done = (metrics.get("n_treated_decisions") == len(cells[False])
                    and metrics.get("n_holdout_decisions") == len(cells[True])
                    and f"{group['lift']:+.4f}" in note and client.list_artifacts(run_id, "figures"))
            return metrics if done else None

        metrics = wait_for(recorded, timeout=30, what=f"version {version}'s lift, note and figure on its run")
        assert metrics["lift"] == pytest.approx(group["lift"])
        assert (metrics["lift_low"], metrics["lift_high"]) == pytest.approx((group["ci_low"], group["ci_high"]))
        assert metrics["live_reward"] == pytest.approx(group["treated_mean_reward"])
        assert metrics["live_reward_low"] < metrics["live_reward"] < metrics["live_reward_high"]
        assert metrics["reward_holdout_mean"] == pytest.approx(group["holdout_mean_reward"])
        run = client.get_run(run_id)
        assert run.info.run_name == f"default v{version} vw"
        assert run.data.tags["mlflow.note.content"].startswith("**Live reward**")
        assert f"{group['lift']:+.4f}" in run.data.tags["mlflow.note.content"]
        figures = [a.path for a in client.list_artifacts(run_id, "figures")]
        assert figures == ["figures/lift_by_version_default.png"]
        assert client.download_artifacts(run_id, figures[0], str(tmp_path)).endswith(".png")


def test_groups_split_by_version_and_period_and_compare_within_them():
    day = 86400.0
    outcomes = [LiftOutcome("a", False, 1.0, "1", 0.5 * day), LiftOutcome("b", False, 0.0, "1", 0.6 * day),
                LiftOutcome("c", True, 0.0, "1", 0.7 * day), LiftOutcome("d", True, 1.0, "1", 0.8 * day),
                LiftOutcome("a", False, 1.0, "2", 1.5 * day), LiftOutcome("c", True, 0.0, "2", 1.6 * day),
                LiftOutcome("e", False, 1.0, "2", 2.1 * day), LiftOutcome("f", True, 1.0, "bootstrap", 0.1 * day)]
    by_version = grouped_lift("c", outcomes, by_version=True)
    assert [(g.policy_version, g.period_start) for g in by_version] == [("bootstrap", None), ("1", None),
                                                                         ("2", None)]
    assert by_version[1].report == lift_of("c", outcomes[:4])
    assert (by_version[2].report.treated_decisions, by_version[2].report.lift) == (2, 1.0)
    by_day = grouped_lift("c", outcomes, every_s=day)
    assert [(g.period_start, g.period_end, g.report.treated_decisions, g.report.holdout_decisions)
            for g in by_day] == [(0.0, day, 2, 3), (day, 2 * day, 1, 1), (2 * day, 3 * day, 1, 0)]
    assert by_day[2].report.lift is None  # no holdout that day: no lift
    both = grouped_lift("c", outcomes, by_version=True, every_s=day)
    assert [(g.policy_version, g.period_start) for g in both] == [("bootstrap", 0.0), ("1", 0.0), ("2", day),
                                                                  ("2", 2 * day)]
    assert grouped_lift("c", outcomes) == ()


@pytest.mark.parametrize("text, seconds", [("1d", 86400.0), ("7d", 7 * 86400.0), ("1h", 3600.0), ("36h", 129600.0)])
def test_every_takes_days_or_hours(text, seconds):
    """The same periods as ``offerbandit exploration --every`` (its tests cover what is refused)."""
    assert parse_period(text) == seconds


def test_the_cli_refuses_a_bad_every(tmp_path):
    done = subprocess.run([OFFERBANDIT, "lift", "--data-dir", str(tmp_path), "--every", "2y"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "--every: period must be" in done.stderr and "'2y'" in done.stderr
