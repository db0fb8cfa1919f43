"""MLflow store fixtures: one migrated template per session, a fresh copy per test.

Migrating a SQLite MLflow store costs seconds; copying the migrated file costs milliseconds.
Import into conftest with ``from tests.fixtures_mlflow import *``.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from offerbandit.errors import InvalidInput
from policy_registry import PolicyRegistry, RegistryConfig

__all__ = ["MlflowStore", "copy_store", "mlflow_template_store", "mlflow_store", "mlflow_registry",
           "write_template_store"]


def write_template_store(path: str | os.PathLike[str]) -> Path:
    """Create a migrated, empty MLflow SQLite store at ``path`` (a .db file) to copy from later.

    Migrating a store takes seconds; tests migrate one template per session and copy it per test.
    """
    target = Path(path).expanduser().resolve()
    if target.exists():
        raise InvalidInput(f"{target} already exists", field="path")
    target.parent.mkdir(parents=True, exist_ok=True)
    from mlflow import MlflowClient

    uri = f"sqlite:///{target}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)
    return target


def copy_store(template: str | os.PathLike[str], data_dir: str | os.PathLike[str]) -> RegistryConfig:
    """Copy a template store to ``<data_dir>/mlflow.db``; the config points there (artifacts beside it)."""
    source = Path(template)
    if not source.is_file():
        raise InvalidInput(f"no template store at {source}", field="template")
    root = Path(data_dir).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, root / "mlflow.db")
    return RegistryConfig(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "mlflow-artifacts"))


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
