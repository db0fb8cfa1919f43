"""``offerbandit export``: the decision log with joined rewards as VW DSJSON."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from offerbandit.cli.options import DEFAULT_DATA_DIR, ConfigFile, DataDir, fail
from offerbandit.errors import OfferBanditError

def export(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    format: Annotated[str, typer.Option("--format", help="Output format; only 'dsjson' (VW DSJSON).")] = "dsjson",
    out: Annotated[Path, typer.Option("--out", help="File to write ('-' for stdout).")] = Path("-"),
    campaign: Annotated[Optional[str], typer.Option(help="Only this campaign.")] = None,
    config: ConfigFile = None,
) -> None:
    """Write the decision log with joined rewards as VW DSJSON (one JSON object a line)."""
    from service.config import load_config
    from decision_log.export import export_dsjson

    if format != "dsjson":
        fail(f"--format must be 'dsjson', got {format!r}")
    try:
        n = export_dsjson(data_dir, out, campaign=campaign, defaults=load_config(config).reward_defaults())
    except OfferBanditError as exc:
        fail(str(exc))
    typer.echo(f"exported {n} decisions to {out}", err=True)
