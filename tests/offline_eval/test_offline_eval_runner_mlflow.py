"""Registry versions as evaluation targets, and evaluation runs written into a real local MLflow store."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from offerbandit.reports.evaluation_runs import log_report, run_eval_command
from offline_eval.runner import evaluate_policies
from offline_eval.log_dataset import load_dataset
from offerbandit.errors import NotFound
from policies.factory import make_policy
from policy_registry import Lineage, PolicyArtifact, PolicyRegistry
from tests.offline_eval.test_offline_eval_runner import drive_log, shifting_rewards

N, SWITCH = 300, 90


def publish(registry: PolicyRegistry, dataset, name: str, train_stop: int, window_end: float | None,
            aliases: tuple[str, ...]) -> str:
    policy = make_policy(name)
    for events in dataset.learning_events(0, train_stop):
        policy.learn(events)
    lineage = Lineage(parent_version=None, log_window_start=float(dataset.decided_at[0]),
                      log_window_end=window_end, event_count=train_stop, code_version="test")
    artifact = PolicyArtifact(campaign="default", policy_name=name, model=policy.save(), config_toml="",
                              lineage=lineage)
    return registry.publish(artifact, aliases=aliases)


@pytest.fixture
def registered(start_server, mlflow_store, monkeypatch):
    """A log in the same data dir as an MLflow store holding v1 (champion) and v2 (challenger)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data_dir = Path(mlflow_store.tracking_uri[len("sqlite:///"):]).parent
    drive_log(start_server, N, shifting_rewards(SWITCH), data_dir=data_dir)
    dataset = load_dataset(data_dir)
    registry = PolicyRegistry(mlflow_store.config)
    # v1 learned from events up to row 149, inside the evaluation window that starts at row 90
    v1 = publish(registry, dataset, "best_single_arm", 150, float(dataset.decided_at[149]), ("champion",))
    v2 = publish(registry, dataset, "per_segment_greedy", SWITCH, None, ("challenger",))
    return data_dir, dataset, registry, v1, v2


def test_versions_are_evaluated_only_after_what_they_learned(registered):
    data_dir, dataset, registry, v1, v2 = registered
    report = evaluate_policies(data_dir, ["champion", f"v{v2}", "uniform"], estimators=["ipw", "snipw"],
                               n_bootstrap=30, train_fraction=SWITCH / N, registry=registry, reward_model=None)
    champion = report.result("champion")
    assert (champion.kind, champion.version, champion.label) == ("alias", v1, f"champion (v{v1})")
    assert champion.window.start == dataset.first_index_after(dataset.decided_at[149]) > SWITCH
    assert champion.evaluation.diagnostics.n_events == N - champion.window.start
    assert any("evaluated only on" in w for w in champion.warnings)
    second = report.result(f"v{v2}")
    assert second.version == v2 and second.window.start == SWITCH
    assert any("does not record which events" in w for w in second.warnings)
    assert report.result("uniform").window.start == SWITCH


def test_unknown_versions_and_aliases_are_not_found(registered):
    data_dir, _, registry, _, _ = registered
    for policy, pattern in (("previous_champion", "no policy alias 'previous_champion'.*champion -> v1"),
                            ("v9", "no policy version 9"), ("unifrom", "no policy alias 'unifrom'")):
        with pytest.raises(NotFound, match=pattern):
            evaluate_policies(data_dir, [policy], registry=registry, reward_model=None, estimators=["ipw"])


def test_evaluation_runs_are_written_per_policy(registered, mlflow_store):
    data_dir, _, registry, v1, _ = registered
    report = evaluate_policies(data_dir, ["champion", "uniform", "counterfactual:best_single_arm"],
                               estimators=["ipw", "snipw"], n_bootstrap=30, registry=registry, reward_model=None)
    run_ids = log_report(report, registry)
    assert len(run_ids) == 3 and len(set(run_ids)) == 3
    client = MlflowClient(tracking_uri=mlflow_store.tracking_uri, registry_uri=mlflow_store.tracking_uri)
    runs = {run_id: client.get_run(run_id) for run_id in run_ids}
    assert len({run.info.experiment_id for run in runs.values()}) == 1
    for result, run_id in zip(report.policies, run_ids):
        run = runs[run_id]
        assert run.data.tags["offerbandit.kind"] == "evaluation" and run.info.status == "FINISHED"
        metrics = run.data.metrics
        for key in ("ipw", "snipw"):
            estimate = result.evaluation[key]
            assert metrics[f"{key}.value"] == pytest.approx(estimate.value)
            assert metrics[f"{key}.ci_low"] == pytest.approx(estimate.ci_low)
            assert metrics[f"{key}.ci_high"] == pytest.approx(estimate.ci_high)
        assert metrics["n_events"] == result.window.n_events
        assert metrics["ess"] == pytest.approx(result.evaluation.diagnostics.effective_sample_size)
        assert metrics["max_weight"] == pytest.approx(result.evaluation.diagnostics.max_importance_weight)
        figures = [a.path for a in client.list_artifacts(run_id, "figures")]
        assert figures == ["figures/estimates.png"]
    champion_run = runs[run_ids[0]]
    assert champion_run.data.tags["version"] == v1
    name = registry.model_name("default")
    assert client.get_model_version(name, v1).tags["last_evaluation_run"] == run_ids[0]
    assert runs[run_ids[1]].data.tags["policy"] == "uniform"
    assert runs[run_ids[2]].data.tags["policy_kind"] == "counterfactual"


def test_run_eval_command_logs_to_the_data_dirs_store(registered):
    data_dir, _, registry, _, _ = registered
    out = io.StringIO()
    assert run_eval_command(data_dir, ["champion", "uniform"], json_out=True, estimators=["ipw"], n_bootstrap=0,
                            log_to_mlflow=True, out=out) == 0
    document = json.loads(out.getvalue())
    assert len(document["mlflow_runs"]) == 2
    assert [p["version"] for p in document["policies"]] == ["1", None]
