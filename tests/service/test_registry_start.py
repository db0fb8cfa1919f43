"""Start-up and the MLflow store: everything MLflow costs happens before the server listens, never beside
serving (issue 15: opening a store that did not exist yet, during serving, was the tail of Decide)."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.live_models import REGISTRY_HEALTH
from tests.conftest import make_request


def test_a_missing_store_is_created_and_migrated_before_the_server_listens(start_server, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data_dir = tmp_path / "fresh"
    served = start_server("[learning]\nregistry_poll_seconds = 3600\n", data_dir=data_dir, start_registry=True)
    registry = served.server.registry
    assert registry.store_was_missing  # there was no store: nothing to load, but it must be opened now
    status = registry.watcher.status()
    assert status.last_poll_time is not None and status.healthy, status
    with sqlite3.connect(data_dir / "mlflow.db") as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"alembic_version", "registered_models", "model_versions", "experiments"} <= tables
    assert served.stub.Decide(make_request(), timeout=10).policy_version == "bootstrap"
    health = health_pb2_grpc.HealthStub(served.channel)
    assert (health.Check(health_pb2.HealthCheckRequest(service=REGISTRY_HEALTH), timeout=5).status
            == health_pb2.HealthCheckResponse.SERVING)


def test_a_zero_start_timeout_listens_without_waiting_for_the_store(start_server, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    served = start_server("[mlflow]\nstart_timeout_seconds = 0\n", data_dir=tmp_path / "nowait",
                          start_registry=True)
    assert served.stub.Decide(make_request(), timeout=10).policy_version == "bootstrap"
    assert served.server.registry.wait_for_first_poll(120)  # opened in the background, as asked


def test_the_registry_opens_mlflow_without_its_telemetry(tmp_path):
    """MLflow's telemetry would fetch its config over the network and batch a record per client call, in the
    serving process; the registry turns it off unless the environment says otherwise."""
    script = textwrap.dedent(f"""
        from policy_registry import PolicyRegistry, RegistryConfig
        registry = PolicyRegistry(RegistryConfig.for_data_dir({str(tmp_path)!r}))
        assert registry.resolve("default", "champion") is None  # opens (creates) the store
        from mlflow.telemetry.utils import is_telemetry_disabled
        print("TELEMETRY OFF", is_telemetry_disabled())
    """)
    # MLflow also turns it off under pytest or CI (PYTEST_CURRENT_TEST, CI): as a server runs, without them
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK",
                                                             "MLFLOW_TRACKING_URI", "PYTEST_CURRENT_TEST", "CI")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "TELEMETRY OFF True" in result.stdout, result.stdout


def test_the_learner_process_also_opens_a_missing_store_before_it_learns(tmp_path, monkeypatch):
    """``offerbandit learn`` on a fresh data dir: the store is created by the first poll before learning starts
    (it skipped the wait when the store was missing, so MLflow's start-up ran beside learning)."""
    from service.config import ServiceConfig
    from service.learn_process import LearnerProcess

    from decision_log import open_log

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "learner").mkdir()
    open_log(tmp_path / "learner", writable=True).close()  # the log a serve made; no MLflow store yet
    process = LearnerProcess(ServiceConfig(), tmp_path / "learner")
    try:
        process.start()
        assert process.registry.store_was_missing
        status = process.registry.watcher.status()
        assert status.last_poll_time is not None and status.healthy, status  # polled before start() returned
        assert (tmp_path / "learner" / "mlflow.db").exists()
    finally:
        process.stop()
