"""Runs in the registry's experiment: the one place MLflow runs are created, filled and finished.

Publishing, audit records of alias moves and evaluations all write their runs through here, so the
experiment (with its artefacts under the data dir) is found or created in one place.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from policy_registry.records import MetricPoint
from policy_registry.store import RegistryStore

__all__ = ["finish_run", "log_files", "log_values", "open_run", "record_run"]

#: MLflow's log_batch takes at most this many metrics per call.
_MAX_METRICS_PER_BATCH = 1000


def open_run(store: RegistryStore, run_name: str, tags: Mapping[str, str]) -> Any:
    """A new run in the experiment (MLflow's Run: ``run.info.run_id``, ``run.info.artifact_uri``)."""
    client = store.client()
    experiment_id = store.experiment()
    return store.call("create_run", lambda: client.create_run(experiment_id, run_name=run_name, tags=dict(tags)))


def log_values(store: RegistryStore, run_id: str, metrics: Mapping[str, float],
               series: Sequence[MetricPoint] = (), params: Mapping[str, str] | None = None) -> None:
    """Metrics (at step 0, now), metric histories and params of a run, in batches MLflow accepts."""
    from mlflow.entities import Metric, Param

    client = store.client()
    now_ms = int(time.time() * 1000)
    batch = [Metric(key, value, now_ms, 0) for key, value in metrics.items()]
    batch += [Metric(p.key, float(p.value), int(p.timestamp_s * 1000), p.step) for p in series]
    if params is not None:  # params go once, with the first batch
        param_list = [Param(key, value) for key, value in params.items()]
        first = batch[:_MAX_METRICS_PER_BATCH]
        store.call("log_batch", lambda: client.log_batch(run_id, metrics=first, params=param_list))
        batch = batch[_MAX_METRICS_PER_BATCH:]
    for start in range(0, len(batch), _MAX_METRICS_PER_BATCH):
        chunk = batch[start:start + _MAX_METRICS_PER_BATCH]
        store.call("log_batch", lambda: client.log_batch(run_id, metrics=chunk))


def log_files(store: RegistryStore, run_id: str, files: Mapping[str, Path], folder: str) -> None:
    """Copy ``name -> path`` into the run's artefacts as ``<folder>/<name>``."""
    if not files:
        return
    client = store.client()
    with tempfile.TemporaryDirectory(prefix="offerbandit-run-") as staging:
        for name, path in files.items():
            shutil.copyfile(path, Path(staging, name))
        store.call("log_artifacts", lambda: client.log_artifacts(run_id, staging, folder))


def finish_run(store: RegistryStore, run_id: str, status: str = "FINISHED") -> None:
    client = store.client()
    store.call("set_terminated", lambda: client.set_terminated(run_id, status))


def record_run(store: RegistryStore, run_name: str, tags: Mapping[str, str], metrics: Mapping[str, float],
               *, series: Sequence[MetricPoint] = (), files: Mapping[str, Path] | None = None,
               folder: str = "figures") -> str:
    """A finished run with its metrics and files, in one go; returns its id."""
    run_id = open_run(store, run_name, tags).info.run_id
    if metrics or series:
        log_values(store, run_id, metrics, series)
    log_files(store, run_id, files or {}, folder)
    finish_run(store, run_id)
    return run_id
