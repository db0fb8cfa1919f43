"""Access to the MLflow store: the lazily opened client, retries on "database is locked", MLflow's
failures mapped to our errors, and the lookups every registry job needs (experiment, registered
model, model version).

MLflow costs about a second to import, so nothing here imports it at import time: the client is
built on first use. The store is one SQLite file; a second writer process can hit "database is
locked", which every call retries with exponential backoff.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from offerbandit.errors import InvalidInput, NotFound, OfferBanditError, RegistryUnavailable
from policy_registry.records import RegistryConfig

if TYPE_CHECKING:  # pragma: no cover - typing only, never imported at run time
    from mlflow import MlflowClient

__all__ = ["RegistryStore", "error_code", "retry_when_locked", "sqlite_path"]

_LOCKED_MESSAGE = "database is locked"

T = TypeVar("T")


def _is_locked(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _LOCKED_MESSAGE in str(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def retry_when_locked(
    call: Callable[[], T], *, attempts: int = 6, first_delay_s: float = 0.05,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``; on "database is locked" wait 50 ms, 100 ms, ... and retry (then re-raise)."""
    delay = first_delay_s
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            if attempt == attempts - 1 or not _is_locked(exc):
                raise
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def error_code(exc: BaseException) -> str | None:
    """MLflow's error code of a failed call (``RESOURCE_DOES_NOT_EXIST``, ...), if it has one."""
    return getattr(exc, "error_code", None)


def sqlite_path(tracking_uri: str) -> Path | None:
    """The file of a ``sqlite:///`` tracking URI (None for other stores and in-memory ones)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri[len("sqlite:///"):].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def _preflight(tracking_uri: str) -> None:
    """Fail fast on a SQLite store we cannot open: MLflow itself retries for ~100 s before giving up."""
    path = sqlite_path(tracking_uri)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)

        def probe() -> None:
            connection = sqlite3.connect(path, timeout=2.0)
            try:
                connection.execute("PRAGMA schema_version").fetchone()
            finally:
                connection.close()

        retry_when_locked(probe)
    except (OSError, sqlite3.Error) as exc:
        raise RegistryUnavailable(f"MLflow store {tracking_uri!r} cannot be opened: {exc}") from exc


class RegistryStore:
    """One MLflow store, opened on first use and shared by the registry's jobs (thread-safe)."""

    def __init__(self, config: RegistryConfig) -> None:
        if not isinstance(config, RegistryConfig):
            raise InvalidInput("config must be a RegistryConfig", field="config")
        self.config = config
        self._client_lock = threading.Lock()
        self._client_instance: MlflowClient | None = None
        self._experiment_id: str | None = None

    def model_name(self, campaign: str) -> str:
        return self.config.model_name(campaign)

    def client(self) -> "MlflowClient":
        with self._client_lock:
            if self._client_instance is None:
                _preflight(self.config.tracking_uri)
                # MLflow's telemetry would run in the serving process: a thread that fetches its config over
                # the network at import and batches a record per client call (CPU beside decisions, and a
                # decision service has no business phoning out). An explicit setting wins.
                os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
                try:
                    from mlflow import MlflowClient

                    uri = self.config.tracking_uri
                    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
                    # Opening the store (and migrating a fresh one) happens here, once.
                    retry_when_locked(lambda: client.search_experiments(max_results=1))
                except OfferBanditError:
                    raise
                except Exception as exc:
                    raise RegistryUnavailable(f"MLflow store {uri!r} cannot be opened: {exc}") from exc
                self._client_instance = client
            return self._client_instance

    def call(self, what: str, call: Callable[[], T]) -> T:
        """One MLflow call: retried when the database is locked, failures mapped to our errors."""
        try:
            return retry_when_locked(call)
        except OfferBanditError:
            raise
        except Exception as exc:
            raise RegistryUnavailable(f"MLflow {what} failed: {exc}") from exc

    def experiment(self) -> str:
        """The id of the configured experiment, created (artefacts under ``artifact_root``) or restored."""
        if self._experiment_id is not None:
            return self._experiment_id
        client = self.client()
        name = self.config.experiment_name
        experiment = self.call("get_experiment_by_name", lambda: client.get_experiment_by_name(name))
        if experiment is None:
            location = (Path(self.config.artifact_root) / name).as_uri()
            try:
                experiment_id = retry_when_locked(
                    lambda: client.create_experiment(name, artifact_location=location)
                )
            except Exception as exc:
                if error_code(exc) != "RESOURCE_ALREADY_EXISTS":  # another process won the race
                    raise RegistryUnavailable(f"cannot create experiment {name!r}: {exc}") from exc
                experiment_id = self.call(
                    "get_experiment_by_name", lambda: client.get_experiment_by_name(name)
                ).experiment_id
        else:
            experiment_id = experiment.experiment_id
            if experiment.lifecycle_stage == "deleted":
                self.call("restore_experiment", lambda: client.restore_experiment(experiment_id))
        self._experiment_id = experiment_id
        return experiment_id

    def ensure_registered_model(self, campaign: str) -> str:
        """The campaign's registered model name, created when it does not exist yet."""
        name = self.model_name(campaign)
        client = self.client()
        try:
            retry_when_locked(
                lambda: client.create_registered_model(
                    name,
                    tags={"campaign": campaign},
                    description=f"offerbandit policies for campaign {campaign!r}",
                )
            )
        except Exception as exc:
            if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                raise RegistryUnavailable(f"cannot create registered model {name!r}: {exc}") from exc
        return name

    def registered_model(self, campaign: str) -> Any | None:
        """MLflow's RegisteredModel of the campaign, or None when it has none yet."""
        name = self.model_name(campaign)
        client = self.client()
        try:
            return retry_when_locked(lambda: client.get_registered_model(name))
        except Exception as exc:
            if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise RegistryUnavailable(f"MLflow get_registered_model failed: {exc}") from exc

    def version_record(self, campaign: str, version: str) -> Any:
        """MLflow's ModelVersion (NotFound for a version the campaign does not have)."""
        name = self.model_name(campaign)
        client = self.client()
        try:
            return retry_when_locked(lambda: client.get_model_version(name, version))
        except Exception as exc:
            if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                raise NotFound(f"campaign {campaign!r} has no policy version {version}") from exc
            raise RegistryUnavailable(f"MLflow get_model_version failed: {exc}") from exc

    def set_version_tags(self, campaign: str, version: str, tags: dict[str, str]) -> None:
        name = self.model_name(campaign)
        client = self.client()
        for key, value in tags.items():
            self.call("set_model_version_tag", lambda: client.set_model_version_tag(name, version, key, value))
