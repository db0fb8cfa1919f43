"""Rejected inputs of the registry records and calls, and the "database is locked" retry policy.

Everything here is refused before MLflow is touched, except the calls that need a real store.
"""
from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from offerbandit.errors import InvalidInput
from policy_registry import (
    GateResult,
    Lineage,
    MetricPoint,
    PolicyArtifact,
    PolicyRegistry,
    RegistryConfig,
    retry_when_locked,
)
from tests.fixtures_mlflow import copy_store, write_template_store

GOOD_LINEAGE = dict(parent_version="3", log_window_start=10.0, log_window_end=20.0, event_count=5, code_version="x")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"parent_version": "three"}, "parent_version"),
        ({"parent_version": 3}, "parent_version"),
        ({"parent_version": ""}, "parent_version"),
        ({"log_window_start": float("nan")}, "log_window_start"),
        ({"log_window_end": float("inf")}, "log_window_end"),
        ({"log_window_start": "yesterday"}, "log_window_start"),
        ({"log_window_start": 30.0}, "log_window_start"),
        ({"event_count": -1}, "event_count"),
        ({"event_count": 2.5}, "event_count"),
        ({"event_count": True}, "event_count"),
        ({"code_version": ""}, "code_version"),
        ({"code_version": None}, "code_version"),
    ],
)
def test_invalid_lineage(changes: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Lineage(**{**GOOD_LINEAGE, **changes})
    assert caught.value.field == field


def good_artifact_fields() -> dict:
    return dict(
        campaign="default", policy_name="vw", model=b"m", config_toml="a = 1\n",
        lineage=Lineage(**GOOD_LINEAGE), metrics={"reward": 0.5},
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"campaign": ""}, "campaign"),
        ({"campaign": "has space"}, "campaign"),
        ({"campaign": "slash/y"}, "campaign"),
        ({"campaign": "x" * 101}, "campaign"),
        ({"policy_name": ""}, "policy_name"),
        ({"policy_name": "a:b"}, "policy_name"),
        ({"model": b""}, "model"),
        ({"model": "text, not bytes"}, "model"),
        ({"config_toml": "a = "}, "config_toml"),
        ({"config_toml": b"a = 1"}, "config_toml"),
        ({"lineage": GOOD_LINEAGE}, "lineage"),
        ({"metrics": {"reward": float("nan")}}, "metrics"),
        ({"metrics": {"reward": "high"}}, "metrics"),
        ({"metrics": {"bad,key": 1.0}}, "metrics"),
        ({"metrics": [("reward", 1.0)]}, "metrics"),
    ],
)
def test_invalid_policy_artifact(changes: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        PolicyArtifact(**{**good_artifact_fields(), **changes})
    assert caught.value.field == field


def test_artifact_metrics_are_a_read_only_copy() -> None:
    metrics = {"reward": 1}
    artifact = PolicyArtifact(**{**good_artifact_fields(), "metrics": metrics})
    metrics["reward"] = 2
    assert artifact.metrics == {"reward": 1.0}
    with pytest.raises(TypeError):
        artifact.metrics["reward"] = 3.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tracking_uri": ""}, "tracking_uri"),
        ({"artifact_root": ""}, "artifact_root"),
        ({"experiment_name": " "}, "experiment_name"),
        ({"model_name_template": "fixed-name"}, "model_name_template"),
        ({"model_name_template": "{campaign}-{other}"}, "model_name_template"),
        ({"model_name_template": "bad name {campaign}"}, "model_name_template"),
    ],
)
def test_invalid_registry_config(changes: dict, field: str, tmp_path: Path) -> None:
    fields = {"tracking_uri": "sqlite:///x.db", "artifact_root": str(tmp_path), **changes}
    with pytest.raises(InvalidInput) as caught:
        RegistryConfig(**fields)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"passed": 1}, "passed"), ({"reason": ""}, "reason"), ({"ci_low": float("nan")}, "ci_low")],
)
def test_invalid_gate_result(changes: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        GateResult(**{"passed": True, "reason": "ok", **changes})
    assert caught.value.field == field


def unused_registry(tmp_path: Path) -> PolicyRegistry:
    # The store path does not exist: every call below must fail validation before opening it.
    return PolicyRegistry(
        RegistryConfig(tracking_uri=f"sqlite:///{tmp_path}/never/mlflow.db", artifact_root=str(tmp_path / "a"))
    )


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda r: r.resolve("default", "latest"), "alias"),
        (lambda r: r.resolve("default", "v3"), "alias"),
        (lambda r: r.resolve("default", "has space"), "alias"),
        (lambda r: r.resolve("", "champion"), "campaign"),
        (lambda r: r.load("default", "one"), "version"),
        (lambda r: r.load("default", "-1"), "version"),
        (lambda r: r.set_alias("default", "champion", "1", who="", why="x"), "who"),
        (lambda r: r.set_alias("default", "champion", "1", who="x", why=" "), "why"),
        (lambda r: r.promote("default", "1", gate=None, who="x", why=""), "why"),
        (lambda r: r.promote("default", "1", gate="yes", who="x", why="y"), "gate"),
        (lambda r: r.promote("default", "1", gate=None, force="yes", who="x", why="y"), "force"),
        (lambda r: r.rollback("default", who=None, why="y"), "who"),
        (lambda r: r.publish(b"model"), "artifact"),
        (lambda r: r.log_evaluation("default", "1", {"x": float("inf")}, {}), "metrics"),
        (lambda r: r.log_evaluation("default", "1", {}, {"fig": "/no/such/file.png"}), "figures"),
        (lambda r: r.log_evaluation("default", "1", {}, {"a/b": "/no/such/file.png"}), "figures"),
        (lambda r: r.log_evaluation("default", "1", {}, {}, series="x"), "series"),
        (lambda r: r.log_evaluation("default", "1", {}, {}, series=[("x", 1.0, 0, 0.0)]), "series"),
        (lambda r: r.log_evaluation("default", "1", {}, {}, series=[MetricPoint("x", 1.0, -1, 0.0)]), "series"),
        (lambda r: r.log_evaluation("default", "1", {}, {}, series=[MetricPoint("x", 1.0, True, 0.0)]), "series"),
        (lambda r: r.log_evaluation("default", "1", {}, {}, series=[MetricPoint("x", 1.0, 0, math.inf)]), "series"),
        (lambda r: r.log_evaluation("default", "1", {}, {}, series=[MetricPoint("x", math.nan, 0, 0.0)]), "metrics"),
        (lambda r: r.log_evaluation("default", "1", {}, {}, series=[MetricPoint("bad|key", 1.0, 0, 0.0)]), "metrics"),
    ],
)
def test_invalid_registry_calls_are_refused_before_touching_the_store(call, field: str, tmp_path: Path) -> None:
    registry = unused_registry(tmp_path)
    with pytest.raises(InvalidInput) as caught:
        call(registry)
    assert caught.value.field == field
    assert not (tmp_path / "never").exists()


def test_publish_refuses_bad_aliases(tmp_path: Path) -> None:
    artifact = PolicyArtifact(**good_artifact_fields())
    for aliases in ("champion", ("champion", "latest")):
        with pytest.raises(InvalidInput) as caught:
            unused_registry(tmp_path).publish(artifact, aliases=aliases)
        assert caught.value.field in {"aliases", "alias"}
    assert not (tmp_path / "never").exists()


def test_template_helpers_refuse_to_overwrite_or_copy_nothing(tmp_path: Path) -> None:
    existing = tmp_path / "mlflow.db"
    existing.write_bytes(b"")
    with pytest.raises(InvalidInput):
        write_template_store(existing)
    with pytest.raises(InvalidInput):
        copy_store(tmp_path / "missing.db", tmp_path / "data")


# --------------------------------------------------------------------------- retries on a real lock


def test_retry_when_locked_waits_out_a_real_sqlite_lock(tmp_path: Path) -> None:
    database = tmp_path / "locked.db"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    attempts: list[int] = []
    sleeps: list[float] = []

    def write() -> int:
        attempts.append(1)
        writer = sqlite3.connect(database, timeout=0)
        try:
            writer.execute("INSERT INTO t VALUES (1)")
            writer.commit()
            return len(attempts)
        finally:
            writer.close()

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            holder.execute("COMMIT")  # the other writer finishes while we back off

    assert retry_when_locked(write, first_delay_s=0.01, sleep=sleep) == 3
    assert sleeps == [0.01, 0.02]
    assert holder.execute("SELECT count(*) FROM t").fetchone() == (1,)
    holder.close()


def test_retry_when_locked_gives_up_and_passes_other_errors_through() -> None:
    calls: list[int] = []

    def always_locked() -> None:
        calls.append(1)
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        retry_when_locked(always_locked, attempts=4, sleep=lambda s: None)
    assert len(calls) == 4

    def other_error() -> None:
        calls.append(1)
        raise sqlite3.OperationalError("no such table: runs")

    calls.clear()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        retry_when_locked(other_error, sleep=lambda s: None)
    assert len(calls) == 1

    def wrapped_lock() -> str:  # MLflow wraps the sqlite error; the cause chain still says "locked"
        calls.append(1)
        if len(calls) < 3:
            try:
                raise sqlite3.OperationalError("database is locked")
            except sqlite3.OperationalError as exc:
                raise RuntimeError("(sqlalchemy) operation failed") from exc
        return "done"

    calls.clear()
    assert retry_when_locked(wrapped_lock, sleep=lambda s: None) == "done"
