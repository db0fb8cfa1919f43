"""``offerbandit erase`` and ``offerbandit user-data``: a customer's right to erasure and of access.

Both hash ``--user-id`` under every listed user-hash key (the key the log's servers use: ``[privacy]
user_hash_key``, ``$OFFERBANDIT_USER_HASH_KEY`` or ``DATA_DIR/secret.key``; never generated here) and
refuse a key the log did not register. Neither reaches earlier exports or archives.
"""
from __future__ import annotations

import dataclasses
import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from offerbandit.cli.options import DEFAULT_DATA_DIR, ConfigFile, DataDir, LogUrl, fail, log_location
from offerbandit.errors import OfferBanditError

UserId = Annotated[str, typer.Option("--user-id", help="The customer's id, as callers send it in DecideRequest.user_id.")]


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _open(data_dir: Path, log_url: str | None, config: Path | None) -> tuple[Any, Any]:
    from decision_log import open_log
    from service.config import load_config
    from service.keys import load_existing_keys
    from service.log_records import log_options

    cfg = load_config(config)
    keys = load_existing_keys(data_dir, cfg.privacy.user_hash_key, cfg.privacy.previous_user_hash_keys)
    return open_log(log_location(data_dir, log_url), options=log_options(cfg)), keys


def erase(
    user_id: UserId,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    log_url: LogUrl = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the counts as one JSON object.")] = False,
    config: ConfigFile = None,
) -> None:
    """Delete every decision, reward, shadow score and history entry (contact) of one customer, in one
    transaction, and print how many of each; exit 0 also when there was nothing. Running servers forget the
    customer within [learning] registry_poll_seconds. An audit row records the erasure (time, counts, the
    keyed hash), never the id."""
    from service.erasure import erase_customer

    try:
        log, keys = _open(data_dir, log_url, config)
        with log:
            counts = erase_customer(log, keys, user_id, who=_who())
    except OfferBanditError as exc:
        fail(str(exc))
    numbers = {"decisions": counts.decisions, "rewards": counts.rewards, "shadow_scores": counts.shadow_scores,
               "history_entries": counts.contacts}
    if json_out:
        typer.echo(json.dumps(numbers, sort_keys=True))
        return
    typer.echo("erased: " + ", ".join(f"{name} {n}" for name, n in numbers.items()))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _decision(held: Any) -> dict:
    plain = _plain(held)
    for name in ("context", "numeric", "features", "baseline"):
        text = plain.pop(f"{name}_json")
        plain[name] = json.loads(text) if text else None
    return plain


def user_data(
    user_id: UserId,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    log_url: LogUrl = None,
    config: ConfigFile = None,
) -> None:
    """Print, as one JSON object, everything the log holds about one customer: decisions (as logged: context,
    numeric features, what was chosen, its probability, reward), rewards, shadow scores and contacts (what
    caps and the per-user history count) — exactly what `offerbandit erase` would delete."""
    from service.erasure import held_about

    try:
        log, keys = _open(data_dir, log_url, config)
        with log:
            held = held_about(log, keys, user_id)
    except OfferBanditError as exc:
        fail(str(exc))
    counts = held.counts
    typer.echo(json.dumps({
        "user_keys": list(held.user_keys),
        "counts": {"decisions": counts.decisions, "rewards": counts.rewards, "shadow_scores": counts.shadow_scores,
                   "history_entries": counts.contacts},
        "decisions": [_decision(d) for d in held.decisions],
        "rewards": _plain(held.rewards),
        "shadow_scores": _plain(held.shadow_scores),
        "contacts": _plain(held.contacts),
    }, indent=2, sort_keys=True))
