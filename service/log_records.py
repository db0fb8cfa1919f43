"""What the engine hands to the log with a decision, and the answers it builds from what the log stored.

- :func:`log_options`: the writer's options from ``[log]``;
- :func:`caps_on`: the campaign's caps on the chosen arm's format, carried in ``DecisionRow.caps`` so the log
  checks them again inside the commit, against every writer's committed contacts (exact across replicas);
- :func:`record_of`: the repeat record of a decision read back from the log (a repeat after a restart, or
  an event id another replica committed first);
- :func:`capped_record`: what the log wrote instead of a decision whose cap was reached by the commit;
- :func:`main_reason`: the reason a ``no_contact`` decision is logged with;
- :func:`write_failure`: why a decision's write resolved without a commit (None: it committed).
"""
from __future__ import annotations

from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np

from decision_log import CapLimit, LoggedDecision, LogOptions
from policies import sampler
from policies.types import JointArm
from service.campaigns import CampaignRuntime
from service.config import ServiceConfig
from service.outcomes import NO_RANKING, DecisionOutcome, RepeatRecord

__all__ = ["capped_record", "caps_on", "log_options", "main_reason", "record_of", "write_failure"]


def record_of(logged: LoggedDecision) -> RepeatRecord:
    """The repeat record of a decision read back from the log (its fingerprint as stored)."""
    outcome = DecisionOutcome(logged.event_id, logged.campaign, logged.chosen_arm, logged.probability, NO_RANKING,
                              logged.policy_version, logged.exploration, logged.no_contact_reason)
    return RepeatRecord.of(outcome, logged.fingerprint, logged.arm_set, np.arange(len(logged.arm_set.arms)),
                           logged.pmf, logged.chosen)


def log_options(config: ServiceConfig) -> LogOptions:
    """The log writer's options from the ``[log]`` section."""
    log = config.log
    return LogOptions(synchronous=log.synchronous, max_group=log.max_group, max_queue=log.max_queue,
                      busy_timeout_ms=log.busy_timeout_ms, wal_autocheckpoint_pages=log.wal_autocheckpoint_pages,
                      connect_timeout_s=log.connect_timeout_seconds)


def caps_on(campaign: CampaignRuntime, arm: JointArm | None) -> tuple[CapLimit, ...]:
    """The campaign's caps that count a contact through ``arm``'s format (none for a no_contact): the log
    checks them again at commit, against every writer's committed contacts."""
    if arm is None:
        return ()
    return tuple(CapLimit(cap.format, float(cap.window_s), int(cap.max_contacts)) for cap in campaign.rules.caps
                 if cap.format in ("*", arm.format))


def capped_record(decided: RepeatRecord) -> RepeatRecord:
    """What the log wrote instead of a decision over a cap: a ``no_contact`` (reason ``cap``), no arms."""
    outcome = DecisionOutcome(decided.event_id, decided.campaign, None, 1.0, NO_RANKING, decided.policy_version,
                              sampler.NO_CONTACT, "cap")
    return RepeatRecord.of(outcome, decided.fingerprint, decided.arms, np.zeros(0, dtype=np.uint32), np.zeros(0), None)


def main_reason(removed: object) -> str:
    """The removal rule that took the most arms (``no_candidates`` when none was removed)."""
    counts = {k: getattr(removed, k) for k in removed.__dataclass_fields__}
    if not any(counts.values()):
        return "no_candidates"
    return max(counts, key=lambda k: counts[k])


def write_failure(write: Future) -> BaseException | None:
    """Why ``write`` resolved without a commit (cancelled, failed), or None when it committed."""
    if write.cancelled():
        return FutureTimeout("the deadline passed before the decision was written; nothing was logged")
    try:
        return write.exception()
    except CancelledError as exc:  # cancelled between the two calls
        return exc
