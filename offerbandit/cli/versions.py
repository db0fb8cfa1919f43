"""``offerbandit promote`` and ``offerbandit rollback``: operator moves of the ``champion`` alias.

Both read the server's configuration (``--config``: experiment name, model name template) and move
``champion`` by compare-and-set under the decision log's write lock when the data dir holds a log, so
a running server's checkpoint never undoes them (and they never undo one silently); each move is
recorded in the log's ``alias_moves``.
"""
from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from offerbandit.cli.options import DEFAULT_DATA_DIR, ConfigFile, DataDir, fail
from offerbandit.errors import OfferBanditError

if TYPE_CHECKING:  # pragma: no cover
    from policy_registry import PolicyRegistry
    from service.config import ServiceConfig


@contextmanager
def _registry(data_dir: Path, cfg: "ServiceConfig") -> Iterator["PolicyRegistry"]:
    """The registry the server of ``data_dir`` with ``cfg`` uses, its alias moves under the log's lock."""
    from decision_log import log_path, open_log
    from policy_registry import PolicyRegistry, RegistryConfig

    config = RegistryConfig.for_data_dir(data_dir, experiment_name=cfg.mlflow.experiment_name,
                                         model_name_template=cfg.mlflow.model_name_template)
    log = open_log(data_dir) if log_path(data_dir).is_file() else None
    try:
        yield PolicyRegistry(config, alias_ledger=log)
    finally:
        if log is not None:
            log.close()


def promote(
    version: Annotated[str, typer.Argument(help="MLflow version number to make champion.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    config: ConfigFile = None,
    campaign: Annotated[str, typer.Option(help="Campaign.")] = "default",
    force: Annotated[bool, typer.Option("--force", help="Skip the offline-evaluation gate.")] = False,
    estimator: Annotated[str, typer.Option(help="Estimator the gate compares.")] = "snipw",
    min_gain: Annotated[float, typer.Option(help="Required gain of the candidate's estimate over the champion's.")] = 0.0,
    why: Annotated[str, typer.Option(help="Reason, recorded on the version.")] = "manual promotion",
    who: Annotated[str, typer.Option(help="Who, recorded on the version (default: the OS user).")] = "",
) -> None:
    """Move `champion` to VERSION if its offline estimate beats the current champion's (or --force)."""
    from offline_eval.gate import offline_gate
    from service.config import load_config
    from service.offline_settings import offline_settings

    try:
        cfg = load_config(config)
        with _registry(data_dir, cfg) as registry:
            gate = None if force else offline_gate(data_dir, campaign, estimator=estimator, min_gain=min_gain,
                                                   settings=offline_settings(cfg))
            result = registry.promote(campaign, version, gate=gate, force=force, who=who or getpass.getuser(),
                                      why=why)
    except OfferBanditError as exc:
        fail(str(exc))
    if not result.promoted:
        fail(f"not promoted: {result.reason}", code=1)
    typer.echo(f"{campaign}: champion {result.champion_before} -> {result.champion_after} ({result.reason})")


def rollback(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    config: ConfigFile = None,
    campaign: Annotated[str, typer.Option(help="Campaign whose champion to roll back.")] = "default",
    why: Annotated[str, typer.Option(help="Reason, recorded on the version.")] = "manual rollback",
    who: Annotated[str, typer.Option(help="Who, recorded on the version (default: the OS user).")] = "",
) -> None:
    """Return `champion` to the newest version of the lineage the last promote or rollback replaced
    (a running server swaps it in within seconds)."""
    from service.config import load_config

    try:
        cfg = load_config(config)
        with _registry(data_dir, cfg) as registry:
            result = registry.rollback(campaign, who=who or getpass.getuser(), why=why)
    except OfferBanditError as exc:
        fail(str(exc))
    typer.echo(f"{campaign}: champion {result.champion_before} -> {result.champion_after} ({result.reason})")
