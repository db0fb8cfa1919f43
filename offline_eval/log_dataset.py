"""Load the decision log as logged bandit feedback for offline evaluation (any log `open_log` opens:
a data directory, ``sqlite:///...`` or ``postgresql://...``; a Parquet export loads through
`offline_eval.parquet_dataset` into the same `LoggedDataset`).

One streaming pass over the log's feedback query (chunks, so logs larger than memory load) keeps only
numbers: the chosen position, reward, logged probability, the ragged logging pmf, times, user keys,
policy versions and the row ids. Contexts and arm sets are *not* kept: :meth:`LoggedDataset.decisions`
re-reads and decodes them chunk by chunk when a target pmf or a reward model needs them.

Which decisions count is the log's rule (`decision_log.counting`): no_contact decisions, deferred
decisions never activated and decisions whose reward window is still open are left out (and counted
in `Exclusions`); a final decision without a stored reward gets its campaign's default reward.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from decision_log import Exclusions, LogFilter, LoggedDecision, RewardDefaults, open_log
from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from offline_eval.feedback import LoggedFeedback
from offline_eval.ragged import RaggedMatrix
from policies.types import UNIT_REWARD_RANGE, LearningEvent

__all__ = ["DEFAULT_CHUNK", "DecisionReader", "Exclusions", "LogDecisions", "LogFilter", "LoggedDataset",
           "campaigns_in_log", "check_present", "load_dataset", "resolve_campaign"]

DEFAULT_CHUNK = 5000


class DecisionReader(Protocol):
    """Where a dataset's decisions are decoded from again (contexts and arm sets are not kept in memory)."""

    def decisions(self, seqs: np.ndarray, chunk: int) -> Iterator[list[LoggedDecision]]:
        """The decisions with these seqs (ascending), ``chunk`` at a time, in that order."""
        ...


@dataclass(frozen=True)
class LogDecisions:
    """Decisions re-read from the log at ``location`` (a URL `decision_log.open_log` accepts)."""

    location: str

    def decisions(self, seqs: np.ndarray, chunk: int) -> Iterator[list[LoggedDecision]]:
        with open_log(self.location) as log:
            for lo in range(0, len(seqs), chunk):
                yield log.decisions_by_seq(seqs[lo:lo + chunk].tolist())


@dataclass(frozen=True, eq=False)
class LoggedDataset:
    """n final decisions of one campaign in log order (time order), as arrays.

    ``feedback.action[i]`` is the chosen position in event i's eligible arms (logged order),
    ``feedback.pscore[i]`` the logged probability, ``feedback.reward[i]`` the final reward.
    ``logging_pmf`` holds the served pmf per event; its ``indptr`` is the candidate layout every
    target pmf and q_hat must share. ``seq`` are the log's row ids (used to re-read contexts);
    ``log`` is where the decisions came from (a log URL, or a Parquet export directory); ``reader``
    decodes them again (None: from the log at ``log``).
    """

    log: str
    campaign: str
    default_reward: float
    feedback: LoggedFeedback
    logging_pmf: RaggedMatrix
    seq: np.ndarray
    event_ids: tuple[str, ...]
    decided_at: np.ndarray
    user_keys: tuple[str, ...]
    policy_versions: tuple[str, ...]
    exclusions: Exclusions = field(default_factory=Exclusions)
    log_filter: LogFilter = field(default_factory=LogFilter)
    reward_range: tuple[float, float] = UNIT_REWARD_RANGE
    reader: DecisionReader | None = None

    @property
    def n_events(self) -> int:
        return self.feedback.n_events

    def __len__(self) -> int:
        return self.n_events

    @property
    def indptr(self) -> np.ndarray:
        return self.logging_pmf.indptr

    def subset(self, start: int, stop: int) -> "LoggedDataset":
        """Events ``start:stop`` (a contiguous time window) as their own dataset."""
        if not 0 <= start < stop <= self.n_events:
            raise InvalidInput(f"window {start}:{stop} is empty or outside 0:{self.n_events}", field="window")
        lo, hi = self.indptr[start], self.indptr[stop]
        indptr = self.indptr[start:stop + 1] - lo
        fb = self.feedback
        return LoggedDataset(
            log=self.log, campaign=self.campaign, default_reward=self.default_reward,
            feedback=LoggedFeedback(fb.action[start:stop], fb.reward[start:stop], fb.pscore[start:stop]),
            logging_pmf=RaggedMatrix(indptr, self.logging_pmf.values[lo:hi]),
            seq=self.seq[start:stop], event_ids=self.event_ids[start:stop],
            decided_at=self.decided_at[start:stop], user_keys=self.user_keys[start:stop],
            policy_versions=self.policy_versions[start:stop], exclusions=self.exclusions,
            log_filter=self.log_filter, reward_range=self.reward_range, reader=self.reader)

    def first_index_after(self, when: float) -> int:
        """Index of the first event decided strictly after ``when`` (n_events when none)."""
        return int(np.searchsorted(self.decided_at, when, side="right"))

    def decisions(self, start: int = 0, stop: int | None = None, *,
                  chunk: int = DEFAULT_CHUNK) -> Iterator[list[LoggedDecision]]:
        """Decode events ``start:stop`` from the log, ``chunk`` at a time (lists in dataset order)."""
        stop = self.n_events if stop is None else stop
        if start >= stop:
            return
        reader = self.reader if self.reader is not None else LogDecisions(self.log)
        yield from reader.decisions(self.seq[start:stop], chunk)

    def learning_events(self, start: int = 0, stop: int | None = None, *,
                        chunk: int = DEFAULT_CHUNK) -> Iterator[list[LearningEvent]]:
        """The events ``start:stop`` as a policy learns them (reward = the dataset's final reward, within
        the campaign's ``reward_range``); quarantined events (learning them once broke a model) are
        left out, as the online learner leaves them out."""
        index = start
        for batch in self.decisions(start, stop, chunk=chunk):
            events = []
            for decision in batch:
                if not decision.quarantined:
                    events.append(LearningEvent(
                        context=decision.context, arm_set=decision.arm_set, chosen=int(decision.chosen),
                        probability=float(decision.probability), reward=float(self.feedback.reward[index]),
                        pmf=decision.pmf, reward_range=self.reward_range))
                index += 1
            yield events


def campaigns_in_log(data_dir: Path | str) -> tuple[str, ...]:
    with open_log(data_dir) as log:
        return log.campaigns()


def resolve_campaign(data_dir: Path | str, campaign: str | None) -> str:
    """``campaign`` if the log has it; None: the log's only campaign (InvalidInput when several)."""
    return check_present(campaigns_in_log(data_dir), campaign, f"the decision log in {data_dir}")


def check_present(present: tuple[str, ...], campaign: str | None, where: str) -> str:
    """``campaign`` if ``present`` has it; None: the only campaign present (InvalidInput when several)."""
    if campaign is not None:
        if campaign not in present:
            raise InvalidInput(f"the log has no decisions for campaign {campaign!r} "
                               f"(present: {', '.join(present) or 'none'})", field="campaign")
        return campaign
    if not present:
        raise InvalidInput(f"{where} is empty", field="data-dir")
    if len(present) > 1:
        raise InvalidInput(f"the log holds several campaigns ({', '.join(present)}); choose one with --campaign",
                           field="campaign")
    return present[0]


def load_dataset(data_dir: Path | str, *, campaign: str | None = None, since: float | None = None,
                 until: float | None = None, policy_version: str | None = None,
                 defaults: RewardDefaults | None = None, chunk: int = DEFAULT_CHUNK) -> LoggedDataset:
    """Stream the decision log under ``data_dir`` (or at a log URL) into a :class:`LoggedDataset`.

    ``campaign`` None: the log's only campaign. ``defaults`` gives the campaign's default reward
    (0.0 when None). Raises InvalidInput when nothing evaluable is left.
    """
    check_scalar(chunk, "chunk", int, low=1)
    campaign = resolve_campaign(data_dir, campaign)
    log_filter = LogFilter(campaign=campaign, since=since, until=until, policy_version=policy_version)
    defaults = defaults or RewardDefaults()

    actions: list[int] = []
    rewards: list[float] = []
    pscores: list[float] = []
    lengths: list[int] = []
    pmf_parts: list[np.ndarray] = []  # one array per chunk
    seqs: list[int] = []
    times: list[float] = []
    event_ids: list[str] = []
    users: list[str] = []
    versions: list[str] = []
    exclusions = Exclusions()
    with open_log(data_dir) as log:
        location = log.location
        for part in log.feedback(log_filter, defaults, chunk=chunk):
            exclusions = exclusions + part.exclusions
            for d in part.decisions:
                actions.append(d.chosen)
                rewards.append(d.reward)
                pscores.append(d.probability)
                lengths.append(len(d.pmf))
                seqs.append(d.seq)
                times.append(d.decided_at)
                event_ids.append(d.event_id)
                users.append(d.user_key)
                versions.append(d.policy_version)
            if part.decisions:
                pmf_parts.append(np.concatenate([d.pmf for d in part.decisions]))

    if not actions:
        why = "; ".join(exclusions.reasons()) or "no decisions match the filters"
        raise InvalidInput(f"no evaluable decisions for campaign {campaign!r}: {why}", field="data-dir")
    indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return LoggedDataset(
        log=location, campaign=campaign, default_reward=defaults.of(campaign),
        feedback=LoggedFeedback(np.asarray(actions, dtype=np.int64), np.asarray(rewards), np.asarray(pscores)),
        logging_pmf=RaggedMatrix(indptr, np.concatenate(pmf_parts)),
        seq=_readonly(np.asarray(seqs, dtype=np.int64)), event_ids=tuple(event_ids),
        decided_at=_readonly(np.asarray(times, dtype=np.float64)), user_keys=tuple(users),
        policy_versions=tuple(versions), exclusions=exclusions, log_filter=log_filter,
        reward_range=defaults.range_of(campaign))


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array
