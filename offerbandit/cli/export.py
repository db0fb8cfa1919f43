"""``offerbandit export``: the decision log with joined rewards as VW DSJSON or as Parquet files."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from offerbandit.cli.options import DEFAULT_DATA_DIR, ConfigFile, DataDir, LogUrl, fail, log_location
from offerbandit.errors import OfferBanditError

FORMATS = ("dsjson", "parquet")


def export(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    log_url: LogUrl = None,
    format: Annotated[str, typer.Option(
        "--format", help="'dsjson' (VW DSJSON, one JSON object a line, to a file) or 'parquet' (Parquet files "
                         "under the --out directory, one row per decision: DuckDB, Spark, pandas, "
                         "`offerbandit eval --parquet`).")] = "dsjson",
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="dsjson: the file to write ('-' or omitted: stdout); parquet: the directory to create "
                      "(new or empty; it then holds only part-NNNNN.parquet files).")] = None,
    campaign: Annotated[Optional[str], typer.Option(help="Only this campaign.")] = None,
    rows_per_file: Annotated[int, typer.Option(
        "--rows-per-file", help="parquet: decisions per part file (the export holds one file's rows in memory "
                                "at a time).")] = 100_000,
    config: ConfigFile = None,
) -> None:
    """Write the decision log with joined rewards as VW DSJSON or as Parquet files."""
    from service.config import load_config

    if format not in FORMATS:
        fail(f"--format must be 'dsjson' or 'parquet', got {format!r}")
    if rows_per_file < 1:
        fail(f"--rows-per-file must be at least 1, got {rows_per_file}")
    where = log_location(data_dir, log_url)
    try:
        defaults = load_config(config).reward_defaults()
        if format == "parquet":
            from decision_log.parquet_export import export_parquet

            if out is None or str(out) == "-":
                fail("--format parquet needs --out DIR (a new or empty directory)")
            result = export_parquet(where, out, campaign=campaign, defaults=defaults, rows_per_file=rows_per_file)
            typer.echo(f"exported {result.rows} decisions to {out} ({len(result.files)} Parquet files)", err=True)
            return
        from decision_log.export import export_dsjson

        target = out or Path("-")
        n = export_dsjson(where, target, campaign=campaign, defaults=defaults)
    except OfferBanditError as exc:
        fail(str(exc))
    typer.echo(f"exported {n} decisions to {target}", err=True)
