"""Commands beyond serve/export, registered on the shared Typer app."""
from __future__ import annotations
