"""The ``offerbandit`` command line (Typer: typed options, --help everywhere).

User mistakes end with a one-line cause on stderr and a non-zero exit, never a traceback. One module
per command; :mod:`offerbandit.cli.app` registers them.
"""
from __future__ import annotations

__all__ = ["main"]


def main() -> None:
    from offerbandit.cli.app import build_app

    build_app()()


if __name__ == "__main__":
    main()
