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

from decision_log.database import open_log
from decision_log.records import LogFilter, RewardDefaults
from offerbandit.errors import InvalidInput
from policies.vw.dsjson import dsjson_line, dsjson_record


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


def export_dsjson(data_dir: Path | str, out: Path, *, campaign: str | None = None,
                  defaults: RewardDefaults | None = None) -> int:
    """Write every decision (optionally of one campaign) to ``out``; returns the number written.

    ``data_dir``: a data directory or a log URL (see `open_log`); ``defaults``: the reward of events
    whose window closed without one (0.0 when None) and each campaign's reward range: rewards are
    clipped to it and costs scaled by it, as online learning does; quarantined events skip learning."""
    defaults = defaults or RewardDefaults()
    written = 0
    with open_log(data_dir) as log, _open_out(out) as handle:
        for decision in log.decisions(LogFilter(campaign=campaign)):
            if decision.chosen is None:
                continue
            reward = decision.reward if decision.reward is not None else defaults.of(decision.campaign)
            record = dsjson_record(event_id=decision.event_id, timestamp=_timestamp(decision.decided_at),
                                   context=decision.context, arm_set=decision.arm_set, pmf=decision.pmf,
                                   chosen=decision.chosen, reward=defaults.clip(decision.campaign, reward),
                                   skip_learn=decision.learned_at is None or decision.quarantined,
                                   model_id=decision.policy_version,
                                   reward_range=defaults.range_of(decision.campaign))
            handle.write(dsjson_line(record) + "\n")
            written += 1
    return written
