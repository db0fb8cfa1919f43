"""Live results on a version's own run: what the version did in production, where the product owner looks.

The run that published a version (named ``<campaign> v<version> <policy>``) is the version's row in MLflow's
runs list and compare view. The process that publishes checkpoints adds to it, off the request path, what
the version's decisions earned once their windows closed: metrics (a new value each time, so MLflow keeps
their history), figure files under ``figures/`` (replaced each time) and the run's description (the
``mlflow.note.content`` tag MLflow shows on the run's page), so the comparison leads with live reward, lift
and their intervals.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from offerbandit.errors import InvalidInput
from policy_registry.runs import log_files, log_values
from policy_registry.store import RegistryStore
from policy_registry.validation import check_version, checked_metrics

__all__ = ["DESCRIPTION_TAG", "record_live_results"]

#: the tag MLflow shows as a run's description
DESCRIPTION_TAG = "mlflow.note.content"


def record_live_results(store: RegistryStore, campaign: str, version: str, metrics: Mapping[str, float],
                        description: str, figures: Mapping[str, str | os.PathLike[str]]) -> str:
    """Log ``metrics``, ``figures`` (``name -> file``, stored as ``figures/<file name>``) and ``description`` on
    the run that published ``version``; returns that run's id."""
    version = check_version(version)
    clean = checked_metrics(metrics)
    if not isinstance(description, str):
        raise InvalidInput("description must be text", field="description")
    files = {}
    for name, path in figures.items():
        if not Path(path).is_file():
            raise InvalidInput(f"figure {name!r}: no file at {path}", field="figures")
        files[Path(path).name] = Path(path)
    run_id = store.version_record(campaign, version).run_id
    if not run_id:
        raise InvalidInput(f"campaign {campaign!r} version {version} has no run", field="version")
    client = store.client()
    log_values(store, run_id, clean)
    store.call("set_tag", lambda: client.set_tag(run_id, DESCRIPTION_TAG, description))
    log_files(store, run_id, files, "figures")
    return run_id
