"""What every command shares: the data-dir and config options and the one-line failure."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["DEFAULT_DATA_DIR", "ConfigFile", "DataDir", "LogUrl", "fail"]

DEFAULT_DATA_DIR = Path("offerbandit-data")

DataDir = Annotated[Path, typer.Option("--data-dir", help="Directory for the decision log, MLflow store and secrets.")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="TOML configuration (defaults if omitted).")]
LogUrl = Annotated[Optional[str], typer.Option(
    "--log-url", help="The decision log: sqlite:///ABS/PATH.db (default: DATA_DIR/decisions.db) or "
                      "postgresql://USER@HOST:PORT/DB (shared by several processes). Overrides log.url of the config.")]


def fail(message: str, code: int = 2) -> None:
    """End the command with a one-line cause on stderr and a non-zero exit (never a traceback)."""
    typer.echo(f"offerbandit: error: {message}", err=True)
    raise typer.Exit(code)
