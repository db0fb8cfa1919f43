"""The Typer application: every command registered here, explicitly, in loop order.

Each command lives in a module of its own and imports its heavy dependencies (gRPC, VW, MLflow)
inside the function, so ``offerbandit --help`` stays fast; nothing registers itself on import.
"""
from __future__ import annotations

import typer

from offerbandit.cli import demo, evaluate, exploration, export, learn, lift, privacy, retrain, serve, show_decision, versions

__all__ = ["build_app"]


def build_app() -> typer.Typer:
    app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                      help="offerbandit: which offer, in which format, at which time — for one customer at a time.")
    app.command()(serve.serve)
    app.command()(learn.learn)
    app.command()(demo.demo)
    app.command()(export.export)
    app.command("eval")(evaluate.eval_command)
    app.command()(exploration.exploration)
    app.command()(lift.lift)
    app.command()(versions.promote)
    app.command()(versions.rollback)
    app.command("show-decision")(show_decision.show_decision)
    app.command()(privacy.erase)
    app.command("user-data")(privacy.user_data)
    app.command()(retrain.retrain)
    return app
