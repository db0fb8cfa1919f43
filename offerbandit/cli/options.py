"""What every command shares: the data-dir and config options and the one-line failure."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["DEFAULT_DATA_DIR", "ConfigFile", "DataDir", "LogUrl", "configure_logging", "fail", "log_location"]

DEFAULT_DATA_DIR = Path("offerbandit-data")

DataDir = Annotated[Path, typer.Option("--data-dir", help="Directory for the decision log, MLflow store and secrets.")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="TOML configuration (defaults if omitted).")]
LogUrl = Annotated[Optional[str], typer.Option(
    "--log-url", help="The decision log: sqlite:///ABS/PATH.db (default: DATA_DIR/decisions.db) or "
                      "postgresql://USER@HOST:PORT/DB (shared by several processes); for serve and learn it overrides [log] url.")]


def fail(message: str, code: int = 2) -> None:
    """End the command with a one-line cause on stderr and a non-zero exit (never a traceback)."""
    typer.echo(f"offerbandit: error: {message}", err=True)
    raise typer.Exit(code)


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``. psycopg's pool warns at every failed connection attempt while a
    PostgreSQL log is retried at start; the command's own one-line error says it once, so the pool
    speaks only from ERROR up unless a more verbose level was asked for."""
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().getEffectiveLevel() >= logging.WARNING:
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


def log_location(data_dir: Path, log_url: str | None) -> Path | str:
    """The log a command reads: ``--log-url`` when given (it must be a URL), else ``--data-dir``'s log."""
    if log_url is None:
        return data_dir
    if "://" not in log_url:
        fail(f"--log-url must be a URL (sqlite:///ABS/PATH.db or postgresql://USER@HOST:PORT/DB), got {log_url!r}")
    return log_url
