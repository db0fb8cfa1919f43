"""``offerbandit retrain --from-log``: a campaign's model rebuilt from the events the log holds now.

For those who need more than erasing a customer's rows: the live model and the versions published before
an erasure still carry what they learned from the erased customer's events; a retrained version carries
only what the log still holds. It is published as a new version (its own lineage) and, with ``--promote``,
made ``champion`` by the operators' compare-and-set (recorded in the log, so running servers follow it within
``registry_poll_seconds`` and catch up on what was learned after it).
"""
from __future__ import annotations

import getpass
import json
from typing import Annotated

import typer

from offerbandit.cli.options import DEFAULT_DATA_DIR, ConfigFile, DataDir, LogUrl, fail, log_location
from offerbandit.errors import OfferBanditError

__all__ = ["retrain"]


def retrain(
    from_log: Annotated[bool, typer.Option("--from-log", help="Train on the decision log's learned events "
                                                              "(the only source; required).")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    log_url: LogUrl = None,
    config: ConfigFile = None,
    campaign: Annotated[str, typer.Option(help="Campaign.")] = "default",
    promote: Annotated[bool, typer.Option("--promote", help="Make the new version champion (no offline gate: "
                                                            "it learned the same events the champion did, "
                                                            "less what was erased).")] = False,
    why: Annotated[str, typer.Option(help="Reason, recorded on the version.")] = "retrained from the log",
    who: Annotated[str, typer.Option(help="Who, recorded on the version (default: the OS user).")] = "",
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Train the campaign's configured policy afresh on every event the log holds as learned (in learn
    order) and publish it as a new version; with --promote make it champion."""
    if not from_log:
        fail("retrain needs --from-log (the decision log is the only source it trains on)")
    from decision_log import open_log
    from policy_registry import PolicyRegistry, RegistryConfig
    from service.config import load_config
    from service.log_records import log_options
    from service.retrain import campaign_settings, retrain_from_log

    try:
        cfg = load_config(config)
        campaign_settings(cfg, campaign)  # before anything is opened
        registry_config = RegistryConfig.for_data_dir(data_dir, experiment_name=cfg.mlflow.experiment_name,
                                                      model_name_template=cfg.mlflow.model_name_template)
        with open_log(log_location(data_dir, log_url), options=log_options(cfg)) as log:
            retrained = retrain_from_log(log, cfg, campaign)
            registry = PolicyRegistry(registry_config, alias_ledger=log)
            version = registry.publish(retrained.artifact(), aliases=())
            result = (registry.promote(campaign, version, gate=None, force=True, who=who or getpass.getuser(),
                                       why=why) if promote else None)
    except OfferBanditError as exc:
        fail(str(exc))
    if result is not None and not result.promoted:
        fail(f"version {version} published, not promoted: {result.reason}", code=1)
    if json_out:
        typer.echo(json.dumps({"campaign": campaign, "version": version, "events": retrained.events,
                               "learn_seq": retrained.learn_seq, "promoted": result is not None,
                               "champion_before": result.champion_before if result else None}, sort_keys=True))
        return
    typer.echo(f"{campaign}: version {version} retrained from the log on {retrained.events} events "
               f"(learn_seq up to {retrained.learn_seq})")
    if result is not None:
        typer.echo(f"{campaign}: champion {result.champion_before} -> {result.champion_after} ({result.reason})")
    else:
        typer.echo(f"serve it with: offerbandit promote {version} --force --campaign {campaign}")
