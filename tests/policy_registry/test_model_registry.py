"""PolicyRegistry against a real MLflow SQLite store (a per-test copy of one migrated template)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from offerbandit.errors import ModelError, NotFound, RegistryUnavailable
from policy_registry import (
    ARTIFACT_FORMAT,
    CHAMPION,
    PREVIOUS_CHAMPION,
    GateResult,
    Lineage,
    MetricPoint,
    PolicyArtifact,
    PolicyRegistry,
    RegistryConfig,
)

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def make_artifact(
    campaign: str = "default", model: bytes = b"\x00vw-model\xffbytes", parent: str | None = None, **extra
) -> PolicyArtifact:
    lineage = Lineage(
        parent_version=parent, log_window_start=1_700_000_000.25, log_window_end=1_700_086_400.5,
        event_count=1234, code_version="git:test",
    )
    return PolicyArtifact(
        campaign=campaign, policy_name=extra.pop("policy_name", "vw_cb_explore_adf"), model=model,
        config_toml=extra.pop("config_toml", 'epsilon = 0.05\n[features]\nnamespaces = ["u", "o"]\n'),
        lineage=lineage, metrics=extra.pop("metrics", {"reward.mean": 0.125, "events": 1234.0}),
    )


def client_for(registry: PolicyRegistry):
    from mlflow import MlflowClient

    uri = registry.config.tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def artefact_dir(registry: PolicyRegistry, campaign: str, version: str) -> Path:
    source = client_for(registry).get_model_version(registry.model_name(campaign), version).source
    return Path(unquote(urlparse(source).path))


def test_importing_the_modules_does_not_import_mlflow() -> None:
    code = (
        "import sys, policy_registry, policy_registry.registry, policy_registry.watcher\n"
        "print('mlflow' in sys.modules, 'matplotlib' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_publish_sets_champion_and_load_returns_identical_bytes_and_lineage(
    mlflow_registry: PolicyRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    artifact = make_artifact()
    version = mlflow_registry.publish(artifact)

    assert mlflow_registry.resolve("default", CHAMPION) == version
    loaded = mlflow_registry.load("default", version)
    assert loaded.model == artifact.model
    assert loaded.config_toml == artifact.config_toml
    assert loaded.lineage == artifact.lineage
    assert (loaded.campaign, loaded.version, loaded.policy_name) == ("default", version, artifact.policy_name)
    assert mlflow_registry.load_alias("default", CHAMPION).alias == CHAMPION

    record = client_for(mlflow_registry).get_model_version("offerbandit-default", version)
    assert record.tags["policy_name"] == "vw_cb_explore_adf"
    assert record.tags["event_count"] == "1234"
    assert record.tags["code_version"] == "git:test"
    assert float(record.tags["log_window_start"]) == 1_700_000_000.25
    assert record.tags["artifact_format"] == ARTIFACT_FORMAT
    assert "parent_version" not in record.tags
    run = client_for(mlflow_registry).get_run(record.run_id)
    assert run.data.metrics == {"reward.mean": 0.125, "events": 1234.0}
    assert run.data.tags["registered_version"] == version
    assert run.info.run_name == f"default v{version} vw_cb_explore_adf"  # what the runs list shows

    # Everything lives under the store's directory; nothing lands in the working directory.
    assert artefact_dir(mlflow_registry, "default", version).is_relative_to(mlflow_registry.config.artifact_root)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow-data"]


def test_versions_chain_and_aliases_follow_publish(mlflow_registry: PolicyRegistry) -> None:
    first = mlflow_registry.publish(make_artifact(model=b"one"))
    second = mlflow_registry.publish(make_artifact(model=b"two", parent=first))
    third = mlflow_registry.publish(make_artifact(model=b"three", parent=second), aliases=("challenger",))

    assert [first, second, third] == ["1", "2", "3"]
    assert mlflow_registry.aliases("default") == {CHAMPION: second, "challenger": third}
    assert mlflow_registry.load("default", second).lineage.parent_version == first
    assert mlflow_registry.load("default", third).model == b"three"
    # Campaigns have separate registered models and version sequences.
    assert mlflow_registry.publish(make_artifact(campaign="sms_winback", model=b"other")) == "1"
    assert mlflow_registry.load("sms_winback", "1").model == b"other"
    assert mlflow_registry.load("default", "1").model == b"one"


def test_unknown_campaign_alias_and_version(mlflow_registry: PolicyRegistry) -> None:
    assert mlflow_registry.resolve("nobody", CHAMPION) is None
    assert mlflow_registry.load_alias("nobody", CHAMPION) is None
    assert mlflow_registry.aliases("nobody") == {}
    mlflow_registry.publish(make_artifact(), aliases=())
    assert mlflow_registry.resolve("default", CHAMPION) is None
    with pytest.raises(NotFound, match="no policy version 7"):
        mlflow_registry.load("default", "7")
    with pytest.raises(NotFound):
        mlflow_registry.load("nobody", "1")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("overwrite_model", "checksum"),
        ("overwrite_config", "checksum"),
        ("delete_model", "cannot be read"),
        ("delete_dir", "cannot be read"),
        ("format_tag", "artefact format"),
        ("lineage_tag", "lineage"),
    ],
)
def test_damaged_artefact_is_a_model_error(mlflow_registry: PolicyRegistry, damage: str, message: str) -> None:
    version = mlflow_registry.publish(make_artifact())
    folder = artefact_dir(mlflow_registry, "default", version)
    client = client_for(mlflow_registry)
    if damage == "overwrite_model":
        (folder / "model.bin").write_bytes(b"\x00vw-model\xffbytez")
    elif damage == "overwrite_config":
        (folder / "config.toml").write_text("epsilon = 0.5\n")
    elif damage == "delete_model":
        (folder / "model.bin").unlink()
    elif damage == "delete_dir":
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
    elif damage == "format_tag":
        client.set_model_version_tag("offerbandit-default", version, "artifact_format", "offerbandit-policy/99")
    elif damage == "lineage_tag":
        client.set_model_version_tag("offerbandit-default", version, "event_count", "many")
    with pytest.raises(ModelError, match=message):
        mlflow_registry.load("default", version)


def test_policy_names_this_code_cannot_load_are_model_errors(mlflow_store) -> None:
    PolicyRegistry(mlflow_store.config).publish(make_artifact(policy_name="neural_ucb"))
    strict = PolicyRegistry(mlflow_store.config, accepted_policy_names={"vw_cb_explore_adf"})
    with pytest.raises(ModelError, match="neural_ucb"):
        strict.load("default", "1")
    assert PolicyRegistry(mlflow_store.config, accepted_policy_names={"neural_ucb"}).load("default", "1")


def estimate_gate(estimates: dict[str, float], calls: list[tuple[str | None, str]]):
    """A gate deciding on the (given) offline estimates of each version, recording its calls."""

    def gate(champion: str | None, candidate: str) -> GateResult:
        calls.append((champion, candidate))
        best = estimates[champion] if champion is not None else float("-inf")
        return GateResult(
            passed=estimates[candidate] > best,
            reason=f"candidate {estimates[candidate]} vs champion {best}",
            candidate_estimate=estimates[candidate],
            champion_estimate=estimates.get(champion) if champion else None,
        )

    return gate


def test_promotion_gate_refuses_worse_accepts_better_and_force(mlflow_registry: PolicyRegistry) -> None:
    for model in (b"v1", b"v2", b"v3"):
        mlflow_registry.publish(make_artifact(model=model), aliases=())
    mlflow_registry.set_alias("default", CHAMPION, "1", who="setup", why="initial")
    calls: list[tuple[str | None, str]] = []
    gate = estimate_gate({"1": 0.10, "2": 0.08, "3": 0.12}, calls)

    refused = mlflow_registry.promote("default", "2", gate=gate, who="ana", why="try worse")
    assert (refused.promoted, refused.champion_after) == (False, "1")
    assert calls == [("1", "2")]
    assert mlflow_registry.resolve("default", CHAMPION) == "1"
    assert mlflow_registry.resolve("default", PREVIOUS_CHAMPION) is None
    client = client_for(mlflow_registry)
    assert "promotion.refused_at" in client.get_model_version("offerbandit-default", "2").tags
    refusal_run = client.get_run(refused.run_id)
    assert refusal_run.data.tags["action"] == "refused"
    assert refusal_run.data.metrics["gate.candidate_estimate"] == 0.08

    better = mlflow_registry.promote("default", "3", gate=gate, who="ana", why="better offline")
    assert (better.promoted, better.forced, better.champion_before) == (True, False, "1")
    assert mlflow_registry.aliases("default") == {CHAMPION: "3", PREVIOUS_CHAMPION: "1"}
    tags = client.get_model_version("offerbandit-default", "3").tags
    assert (tags["champion.set_by"], tags["champion.why"], tags["champion.action"]) == (
        "ana", "better offline", "promote",
    )
    assert tags["champion.set_at"].startswith("20")

    forced = mlflow_registry.promote("default", "2", gate=gate, force=True, who="bo", why="business call")
    assert (forced.promoted, forced.forced) == (True, True)
    assert mlflow_registry.aliases("default") == {CHAMPION: "2", PREVIOUS_CHAMPION: "3"}
    assert client.get_run(forced.run_id).data.tags["action"] == "force_promote"

    again = mlflow_registry.promote("default", "2", gate=gate, who="bo", why="again")
    assert again.promoted is False and "already" in again.reason


def test_promotion_without_gate_only_when_there_is_no_champion(mlflow_registry: PolicyRegistry) -> None:
    mlflow_registry.publish(make_artifact(model=b"a"), aliases=())
    mlflow_registry.publish(make_artifact(model=b"b"), aliases=())
    assert mlflow_registry.promote("default", "1", gate=None, who="x", why="first").promoted
    result = mlflow_registry.promote("default", "2", gate=None, who="x", why="no gate")
    assert not result.promoted and mlflow_registry.resolve("default", CHAMPION) == "1"
    with pytest.raises(NotFound):
        mlflow_registry.promote("default", "9", gate=None, force=True, who="x", why="missing")


def test_rollback_returns_to_previous_champion_and_undoes_itself(mlflow_registry: PolicyRegistry) -> None:
    with pytest.raises(NotFound, match="previous champion"):
        mlflow_registry.rollback("default", who="x", why="nothing yet")
    mlflow_registry.publish(make_artifact(model=b"old"))
    mlflow_registry.publish(make_artifact(model=b"new"), aliases=())
    mlflow_registry.promote("default", "2", gate=None, force=True, who="x", why="ship it")

    result = mlflow_registry.rollback("default", who="oncall", why="conversion dropped")
    assert (result.champion_before, result.champion_after) == ("2", "1")
    assert mlflow_registry.load_alias("default", CHAMPION).model == b"old"
    assert mlflow_registry.resolve("default", PREVIOUS_CHAMPION) == "2"
    client = client_for(mlflow_registry)
    tags = client.get_model_version("offerbandit-default", "1").tags
    assert (tags["champion.set_by"], tags["champion.action"]) == ("oncall", "rollback")
    assert client.get_run(result.run_id).data.tags["why"] == "conversion dropped"

    mlflow_registry.rollback("default", who="oncall", why="false alarm")
    assert mlflow_registry.aliases("default") == {CHAMPION: "2", PREVIOUS_CHAMPION: "1"}


def test_log_evaluation_links_run_and_version(mlflow_registry: PolicyRegistry, tmp_path: Path) -> None:
    version = mlflow_registry.publish(make_artifact())
    figure = tmp_path / "estimates.png"
    figure.write_bytes(PNG_BYTES)
    metrics = {"ipw.value": 0.131, "ipw.ci_low": 0.12, "ipw.ci_high": 0.142, "dr.lift_vs_champion": 0.004}
    run_id = mlflow_registry.log_evaluation("default", version, metrics, {"estimates": figure})

    client = client_for(mlflow_registry)
    run = client.get_run(run_id)
    assert run.data.metrics == metrics
    assert (run.data.tags["version"], run.data.tags["offerbandit.kind"]) == (version, "evaluation")
    assert [a.path for a in client.list_artifacts(run_id, "figures")] == ["figures/estimates.png"]
    assert client.get_model_version("offerbandit-default", version).tags["last_evaluation_run"] == run_id
    with pytest.raises(NotFound):
        mlflow_registry.log_evaluation("default", "5", metrics, {})


def test_log_evaluation_records_metric_histories(mlflow_registry: PolicyRegistry) -> None:
    version = mlflow_registry.publish(make_artifact())
    day = 86_400.0
    start = 1_795_000_000.0 // day * day
    # More points than one MLflow batch takes, so they go in several.
    series = [MetricPoint("exploration_daily.share_outside_history", 0.05 + step / 10_000, step, start + step * day)
              for step in range(1_200)]
    series.append(MetricPoint("exploration_daily.discoveries", 3.0, 0, start))
    run_id = mlflow_registry.log_evaluation("default", version, {"reward.mean": 0.2}, {}, series=series)

    client = client_for(mlflow_registry)
    history = sorted(client.get_metric_history(run_id, "exploration_daily.share_outside_history"),
                     key=lambda m: m.step)
    assert [m.step for m in history] == list(range(1_200))
    assert [m.value for m in history] == [p.value for p in series[:1_200]]
    assert [m.timestamp for m in history] == [int(p.timestamp_s * 1000) for p in series[:1_200]]
    assert client.get_run(run_id).data.metrics == {"reward.mean": 0.2, "exploration_daily.discoveries": 3.0,
                                                   "exploration_daily.share_outside_history": series[1_199].value}


def test_unopenable_store_fails_fast_with_registry_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    registry = PolicyRegistry(
        RegistryConfig(tracking_uri=f"sqlite:///{blocker}/mlflow.db", artifact_root=str(tmp_path / "a"))
    )
    with pytest.raises(RegistryUnavailable, match="cannot be opened"):
        registry.resolve("default", CHAMPION)
    with pytest.raises(RegistryUnavailable):
        registry.publish(make_artifact())


def test_for_data_dir_defaults_to_sqlite_under_the_data_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = RegistryConfig.for_data_dir(tmp_path / "data")
    assert config.tracking_uri == f"sqlite:///{tmp_path / 'data' / 'mlflow.db'}"
    assert config.artifact_root == str(tmp_path / "data" / "mlflow-artifacts")
    assert config.model_name("homepage_banner") == "offerbandit-homepage_banner"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert RegistryConfig.for_data_dir(tmp_path).tracking_uri == "http://mlflow.internal:5000"
    custom = RegistryConfig.for_data_dir(tmp_path, model_name_template="shop-{campaign}-policy")
    assert custom.model_name("sms") == "shop-sms-policy"
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://mlflow.internal:5000"
