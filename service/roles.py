"""Which log a process uses and which roles it plays there (DESIGN-NOTES "Wave 2: roles").

- The log is named by a URL: ``[log] url`` or ``--log-url``; empty means the data dir's
  ``sqlite:///D/decisions.db``. A ``postgresql://`` (or ``postgres://``) log is *shared*: several
  processes write it.
- ``serve`` on the embedded SQLite log decides, learns, checkpoints and publishes (as before); on a
  shared log, or with ``[learning] role = "decider"``, it is a *replica*: it decides and logs, serves
  each campaign's ``champion`` from the registry and follows the alias; ``offerbandit learn`` learns.
- Printed URLs never show a password (:func:`masked`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from offerbandit.errors import InvalidInput
from service.config import ServiceConfig

__all__ = ["SHARED_SCHEMES", "ServeRole", "check_learner", "is_shared", "log_url", "masked", "serve_role", "sqlite_file",
           "with_log_url"]

SHARED_SCHEMES = ("postgresql://", "postgres://")
SQLITE_PREFIX = "sqlite:///"
_PASSWORD = re.compile(r"\b([a-z][a-z0-9+.-]*://[^:/@\s'\"]*):[^@/\s'\"]*@", re.I)


def with_log_url(config: ServiceConfig, url: str | None) -> ServiceConfig:
    """``config`` with ``[log] url`` set to ``url`` (``--log-url``); unchanged when ``url`` is None."""
    if url is None:
        return config
    return replace(config, log=replace(config.log, url=url))


def log_url(config: ServiceConfig, data_dir: Path) -> str:
    """The log's URL: ``[log] url`` (``--log-url`` folds into it), else ``sqlite:///<data-dir>/decisions.db``."""
    url = config.log.url.strip()
    if not url:
        from decision_log import log_path

        return f"{SQLITE_PREFIX}{log_path(Path(data_dir)).resolve()}"
    if url.startswith(SQLITE_PREFIX):
        if not url[len(SQLITE_PREFIX):]:
            raise InvalidInput("log-url sqlite:/// needs an absolute path: sqlite:///ABS/PATH.db", field="log-url")
        return url
    if url.startswith(SHARED_SCHEMES):
        return url
    raise InvalidInput(f"unsupported log-url {masked(url)!r}: use sqlite:///ABS/PATH.db or postgresql://USER@HOST/DB",
                       field="log-url")


def is_shared(url: str) -> bool:
    """True for a log several processes write (PostgreSQL); the embedded SQLite log has one writer."""
    return url.startswith(SHARED_SCHEMES)


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (None for another scheme)."""
    if not url.startswith(SQLITE_PREFIX):
        return None
    return Path(url[len(SQLITE_PREFIX) - 1:])


def masked(url: str) -> str:
    """``url`` (or a message holding URLs) with each password replaced by ``***``
    (``postgresql://user:***@host/db``)."""
    return _PASSWORD.sub(r"\1:***@", url)


@dataclass(frozen=True)
class ServeRole:
    """What one ``serve`` process does on its log: ``learns`` (learner thread, checkpoints, publishes) or
    not (a replica: it serves the registry's champion and follows it; it needs a shared registry)."""

    url: str
    shared: bool
    learns: bool

    @property
    def name(self) -> str:
        return "all" if self.learns else "replica"


def serve_role(config: ServiceConfig, url: str) -> ServeRole:
    """The role of ``serve`` on ``url``. A replica needs ``MLFLOW_TRACKING_URI`` (the registry every process on
    the log shares) and ``[mlflow] enabled``: without them it would never serve a learned model."""
    shared = is_shared(url)
    learns = config.learning.role == "auto" and not shared
    if not learns:
        why = "a shared log" if shared else 'learning.role = "decider"'
        if not config.mlflow.enabled:
            raise InvalidInput(f"serve on {why} serves the registry's champion: it needs [mlflow] enabled = true",
                               field="mlflow.enabled")
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            raise InvalidInput(f"serve on {why} is a replica: set MLFLOW_TRACKING_URI to the registry the learner "
                               "publishes to", field="MLFLOW_TRACKING_URI")
    return ServeRole(url=url, shared=shared, learns=learns)


def check_learner(config: ServiceConfig, url: str) -> None:
    """``offerbandit learn`` publishes to the registry every process on the log reads: it needs ``[mlflow]
    enabled`` and, on a shared log, ``MLFLOW_TRACKING_URI`` (a local store would be seen by no replica)."""
    if not config.mlflow.enabled:
        raise InvalidInput("learn publishes checkpoints to the MLflow registry: it needs [mlflow] enabled = true",
                           field="mlflow.enabled")
    if is_shared(url) and not os.environ.get("MLFLOW_TRACKING_URI"):
        raise InvalidInput("learn on a shared log publishes to the registry its replicas follow: set "
                           "MLFLOW_TRACKING_URI", field="MLFLOW_TRACKING_URI")
