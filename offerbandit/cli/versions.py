"""``offerbandit promote`` and ``offerbandit rollback``: operator moves of the ``champion`` alias."""
from __future__ import annotations

import getpass
from typing import Annotated

import typer

from offerbandit.cli.options import DEFAULT_DATA_DIR, DataDir, fail
from offerbandit.errors import OfferBanditError

def promote(
    version: Annotated[str, typer.Argument(help="MLflow version number to make champion.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    campaign: Annotated[str, typer.Option(help="Campaign.")] = "default",
    force: Annotated[bool, typer.Option("--force", help="Skip the offline-evaluation gate.")] = False,
    estimator: Annotated[str, typer.Option(help="Estimator the gate compares.")] = "snipw",
    min_gain: Annotated[float, typer.Option(help="Required gain of the candidate's estimate over the champion's.")] = 0.0,
    why: Annotated[str, typer.Option(help="Reason, recorded on the version.")] = "manual promotion",
    who: Annotated[str, typer.Option(help="Who, recorded on the version (default: the OS user).")] = "",
) -> None:
    """Move `champion` to VERSION if its offline estimate beats the current champion's (or --force)."""
    from offline_eval.gate import offline_gate
    from policy_registry import PolicyRegistry, RegistryConfig
    from service.config import ServiceConfig
    from service.offline_settings import offline_settings

    try:
        registry = PolicyRegistry(RegistryConfig.for_data_dir(data_dir))
        gate = None if force else offline_gate(data_dir, campaign, estimator=estimator, min_gain=min_gain,
                                               settings=offline_settings(ServiceConfig()))
        result = registry.promote(campaign, version, gate=gate, force=force, who=who or getpass.getuser(), why=why)
    except OfferBanditError as exc:
        fail(str(exc))
    if not result.promoted:
        fail(f"not promoted: {result.reason}", code=1)
    typer.echo(f"{campaign}: champion {result.champion_before} -> {result.champion_after} ({result.reason})")


def rollback(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    campaign: Annotated[str, typer.Option(help="Campaign whose champion to roll back.")] = "default",
    why: Annotated[str, typer.Option(help="Reason, recorded on the version.")] = "manual rollback",
    who: Annotated[str, typer.Option(help="Who, recorded on the version (default: the OS user).")] = "",
) -> None:
    """Return `champion` to the previous champion (a running server swaps it in within seconds)."""
    from policy_registry import PolicyRegistry, RegistryConfig

    try:
        result = PolicyRegistry(RegistryConfig.for_data_dir(data_dir)).rollback(
            campaign, who=who or getpass.getuser(), why=why)
    except OfferBanditError as exc:
        fail(str(exc))
    typer.echo(f"{campaign}: champion {result.champion_before} -> {result.champion_after} ({result.reason})")
