"""What every command shares: the data-dir and config options and the one-line failure."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["DEFAULT_DATA_DIR", "ConfigFile", "DataDir", "LogUrl", "fail", "log_location"]

DEFAULT_DATA_DIR = Path("offerbandit-data")

DataDir = Annotated[Path, typer.Option("--data-dir", help="Directory for the decision log, MLflow store and secrets.")]
LogUrl = Annotated[Optional[str], typer.Option(
    "--log-url", help="Where the decision log lives: sqlite:///ABS/PATH.db or postgresql://USER@HOST:PORT/DB "
                      "(instead of the one in --data-dir).")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="TOML configuration (defaults if omitted).")]


def fail(message: str, code: int = 2) -> None:
    """End the command with a one-line cause on stderr and a non-zero exit (never a traceback)."""
    typer.echo(f"offerbandit: error: {message}", err=True)
    raise typer.Exit(code)


def log_location(data_dir: Path, log_url: str | None) -> Path | str:
    """The log a command reads: ``--log-url`` when given (it must be a URL), else ``--data-dir``'s log."""
    if log_url is None:
        return data_dir
    if "://" not in log_url:
        fail(f"--log-url must be a URL (sqlite:///ABS/PATH.db or postgresql://USER@HOST:PORT/DB), got {log_url!r}")
    return log_url
