"""MLflow store fixtures: one migrated template per session, a fresh copy per test.

Migrating a SQLite MLflow store costs seconds; copying the migrated file costs milliseconds.
Import into conftest with ``from tests.fixtures_mlflow import *``.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from policy_registry.registry import PolicyRegistry, RegistryConfig, copy_store, write_template_store

__all__ = ["MlflowStore", "mlflow_template_store", "mlflow_store", "mlflow_registry"]


class MlflowStore(NamedTuple):
    tracking_uri: str
    artifact_root: str

    @property
    def config(self) -> RegistryConfig:
        return RegistryConfig(tracking_uri=self.tracking_uri, artifact_root=self.artifact_root)


@pytest.fixture(scope="session")
def mlflow_template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty MLflow SQLite store file, made once per test session."""
    return write_template_store(tmp_path_factory.mktemp("mlflow-template") / "mlflow.db")


@pytest.fixture
def mlflow_store(mlflow_template_store: Path, tmp_path: Path) -> Iterator[MlflowStore]:
    """A private copy of the template under ``tmp_path/mlflow-data``: (tracking_uri, artifact_root)."""
    config = copy_store(mlflow_template_store, tmp_path / "mlflow-data")
    yield MlflowStore(config.tracking_uri, config.artifact_root)


@pytest.fixture
def mlflow_registry(mlflow_store: MlflowStore) -> PolicyRegistry:
    """A PolicyRegistry on this test's private store."""
    return PolicyRegistry(mlflow_store.config)
