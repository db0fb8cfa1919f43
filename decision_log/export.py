"""Export the decision log as VW DSJSON (one JSON object a line), readable by ``vw --dsjson --cb_adf``.

Each record is the decision as it was logged (eligible arms, offer snapshot, full pmf) with its
joined reward. Records VW must not learn from carry ``"_skipLearn": true``: deferred decisions
never activated, and decisions whose reward window is still open (no final reward yet).
``no_contact`` decisions have no action and are not exported.
"""
from __future__ import annotations

import contextlib
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from offerbandit.errors import InvalidInput
from policies.vw.dsjson import dsjson_line, dsjson_record
from service.config import ServiceConfig
from decision_log.sqlite_log import LogReader, log_path
from decision_log.records import OfferSetCache, decode_row


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@contextlib.contextmanager
def _open_out(out: Path):
    if str(out) == "-":
        yield sys.stdout
        return
    try:
        handle: TextIO = open(out, "w", encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write {out}: {exc.strerror}", field="out") from exc
    with handle:
        yield handle


def export_dsjson(data_dir: Path, out: Path, *, campaign: str | None = None,
                  config: ServiceConfig | None = None) -> int:
    """Write every decision (optionally of one campaign) to ``out``; returns the number written."""
    path = log_path(data_dir)
    if not path.exists():
        raise InvalidInput(f"no decision log at {path}", field="data-dir")
    config = config or ServiceConfig()
    reader = LogReader(path)
    offers = OfferSetCache(reader)
    written = 0
    try:
        with _open_out(out) as handle:
            for row in reader.iter_decisions(campaign=campaign):
                decision = decode_row(row, offers)
                if decision.chosen is None:
                    continue
                final = decision.learned_at is not None
                default = config.campaigns[decision.campaign].default_reward \
                    if decision.campaign in config.campaigns else 0.0
                reward = decision.reward if decision.reward is not None else default
                record = dsjson_record(event_id=decision.event_id, timestamp=_timestamp(decision.decided_at),
                                       context=decision.context, arm_set=decision.arm_set, pmf=decision.pmf,
                                       chosen=decision.chosen, reward=float(reward), skip_learn=not final,
                                       model_id=decision.policy_version)
                handle.write(dsjson_line(record) + "\n")
                written += 1
    finally:
        reader.close()
    return written
