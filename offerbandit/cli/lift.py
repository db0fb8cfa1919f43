"""``offerbandit lift``: incremental lift of the served policy over each campaign's holdout group."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from offerbandit.cli.options import DEFAULT_DATA_DIR, ConfigFile, DataDir, LogUrl, fail, log_location
from offerbandit.errors import OfferBanditError


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def lift(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    log_url: LogUrl = None,
    campaign: Annotated[Optional[str], typer.Option(help="Only this campaign.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object (the fields of the table).")] = False,
    config: ConfigFile = None,
) -> None:
    """Treated vs holdout mean reward per decision, their difference (lift) and its 95% interval
    (the customer, not the decision, is the unit). The configuration gives default rewards and reward windows."""
    from offerbandit.reports.lift import lift_json, lift_reports
    from service.config import load_config

    where = log_location(data_dir, log_url)
    try:
        cfg = load_config(config)
        windows = {name: c.reward_window_seconds for name, c in cfg.campaigns.items()}
        aggregations = {name: c.aggregation for name, c in cfg.campaigns.items()}
        reports = lift_reports(where, cfg.reward_defaults(), windows, aggregations=aggregations, campaign=campaign)
    except OfferBanditError as exc:
        fail(str(exc))
    if json_out:
        typer.echo(lift_json(reports))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Incremental lift over the holdout (mean reward per decision; 95% interval over customers)")
    for name in ("campaign", "treated decisions", "treated customers", "treated mean", "holdout decisions",
                 "holdout customers", "holdout mean", "lift", "95% interval"):
        table.add_column(name, justify="left" if name == "campaign" else "right")
    for r in reports:
        interval = "-" if r.ci_low is None else f"[{r.ci_low:.4g}, {r.ci_high:.4g}]"
        table.add_row(r.campaign, str(r.treated_decisions), str(r.treated_customers), _cell(r.treated_mean_reward),
                      str(r.holdout_decisions), str(r.holdout_customers), _cell(r.holdout_mean_reward),
                      _cell(r.lift), interval)
    Console(width=max(Console().width, 140)).print(table)
