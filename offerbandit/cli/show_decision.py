"""``offerbandit show-decision EVENT_ID``: one logged decision, read from the log (no server needed).

It prints what ``GetDecision`` answers — the decision as it was returned, its full logged pmf, every removed
arm with the first rule that removed it, the reward — plus the reward calls the log stored for the event.
``--json`` prints the ``DecisionRecord`` message as JSON (the proto's field names), with ``rewards`` beside it.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from offerbandit.cli.options import DEFAULT_DATA_DIR, ConfigFile, DataDir, LogUrl, fail, log_location

__all__ = ["show_decision"]


def _where(data_dir: Path, log_url: str | None, config: Path | None) -> Path | str:
    """``--log-url``, else the configuration's ``[log] url``, else the data dir's log."""
    if log_url is not None or config is None:
        return log_location(data_dir, log_url)
    from service.config import load_config

    url = load_config(config).log.url.strip()
    return url or data_dir


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _arm(offer_id: str, fmt: str, slot: str) -> str:
    return f"{offer_id} / {fmt} / {slot}"


def show_decision(
    event_id: Annotated[str, typer.Argument(help="The decision's event_id.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    log_url: LogUrl = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object: GetDecision's DecisionRecord "
                                                          "(proto field names) and the stored reward calls.")] = False,
    config: ConfigFile = None,
) -> None:
    """One logged decision: as it was returned, its full pmf, every removed arm and its rule, the reward(s)."""
    from decision_log import open_log
    from google.protobuf.json_format import MessageToDict
    from offerbandit.errors import OfferBanditError
    from service.inspection import inspect_decision, record_message

    try:
        with open_log(_where(data_dir, log_url, config)) as log:
            found = inspect_decision(log, event_id)
            rewards = log.rewards_of(event_id)
    except OfferBanditError as exc:
        fail(str(exc))
    calls = [{"reward_id": r.reward_id, "value": r.value, "received_at": r.received_at, "status": r.status}
             for r in rewards]
    if json_out:
        record = MessageToDict(record_message(found), preserving_proto_field_name=True,
                               always_print_fields_with_no_presence=True)
        typer.echo(json.dumps({**record, "rewards": calls}, indent=2, sort_keys=False))
        return
    out, d = found.outcome, found.stored.decision
    lines = [f"event_id        {out.event_id}", f"campaign        {out.campaign}",
             f"decided at      {_when(d.decided_at)}", f"policy version  {out.policy_version}",
             f"exploration     {out.exploration}"]
    if out.arm is None:
        lines.append(f"chosen          no_contact (reason: {out.no_contact_reason or '-'})")
    else:
        lines.append(f"chosen          {_arm(out.arm.offer_id, out.arm.format, out.arm.time_slot)}  "
                     f"probability {out.probability:.6g}")
    if d.deferred:
        lines.append(f"deferred        activated at {_when(d.activated_at)}" if d.activated_at is not None
                     else "deferred        never activated")
    lines.append(f"pmf             {len(out.ranking)} arm(s) with non-zero probability (the full logged pmf)")
    lines += [f"  {_arm(a.offer_id, a.format, a.time_slot):<40} {p:.6g}" for a, p in out.ranking]
    lines.append(f"removed         {len(found.removed)} arm(s), each with the first rule that removed it")
    lines += [f"  {_arm(r.arm.offer_id, r.arm.format, r.arm.time_slot):<40} {r.rule or '(not logged)'}"
              for r in found.removed]
    lines.append(f"reward          {found.reward:.6g} (rewarded)" if found.rewarded else "reward          0 (not rewarded)")
    lines += [f"  {c['status']:<10} {c['value']:.6g}  reward_id {c['reward_id'] or '-'}  at {_when(c['received_at'])}"
              for c in calls]
    typer.echo("\n".join(lines))
