"""Load the decision service's SQLite log as logged bandit feedback for offline evaluation.

One streaming pass (keyset-paginated chunks, so logs larger than memory load) keeps only numbers:
the chosen position, reward, logged probability, the ragged logging pmf, times, user keys, policy
versions and the row ids. Contexts and arm sets are *not* kept: :meth:`LoggedDataset.decisions`
re-reads and decodes them chunk by chunk when a target pmf or a reward model needs them.

Which decisions count (see ``service/reward_ops.py`` for when an event is final):

- ``no_contact`` decisions have no action: excluded.
- deferred decisions never activated were never shown, never learned: excluded.
- decisions whose reward window is still open (``learned_at`` NULL) have no final reward: excluded.
- a final decision without a stored reward gets the campaign's ``default_reward``.
"""
from __future__ import annotations

import json
import math
import sqlite3
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from offline_eval.feedback import LoggedFeedback
from offline_eval.ragged import RaggedMatrix
from offerbandit.errors import InvalidInput
from policies.types import ArmSet, DecisionContext, JointArm, LearningEvent
from service.config import ServiceConfig
from decision_log.sqlite_log import LogReader, blob_to_indices, blob_to_pmf, log_path
from decision_log.records import LoggedDecision, OfferSetCache, decode_row

DEFAULT_CHUNK = 5000
NO_CONTACT = "no_contact"


@dataclass(frozen=True)
class LogFilter:
    """Which part of the log to load: one campaign, decisions in [since, until), one policy version."""

    campaign: str | None = None
    since: float | None = None
    until: float | None = None
    policy_version: str | None = None

    def __post_init__(self) -> None:
        if self.campaign is not None and (not isinstance(self.campaign, str) or not self.campaign):
            raise InvalidInput("campaign must be a non-empty string or None", field="campaign")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise InvalidInput(f"{name} must be a finite time in seconds or None, got {value!r}", field=name)
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise InvalidInput(f"since ({self.since}) must be before until ({self.until})", field="since")
        if self.policy_version is not None and (not isinstance(self.policy_version, str) or not self.policy_version):
            raise InvalidInput("policy_version must be a non-empty string or None", field="policy_version")

    def where(self) -> tuple[list[str], list[object]]:
        clauses: list[str] = []
        params: list[object] = []
        for clause, value in (("campaign = ?", self.campaign), ("decided_at >= ?", self.since),
                              ("decided_at < ?", self.until), ("policy_version = ?", self.policy_version)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        return clauses, params


@dataclass(frozen=True)
class Exclusions:
    """How many decisions matching the filter were left out, by reason."""

    no_contact: int = 0
    deferred_not_activated: int = 0
    not_final: int = 0

    @property
    def total(self) -> int:
        return self.no_contact + self.deferred_not_activated + self.not_final

    def reasons(self) -> tuple[str, ...]:
        """One plain sentence per non-zero reason."""
        lines = []
        if self.no_contact:
            lines.append(f"{self.no_contact} no_contact decisions (rules left no eligible arm; nothing to evaluate)")
        if self.deferred_not_activated:
            lines.append(f"{self.deferred_not_activated} deferred decisions never activated (never shown)")
        if self.not_final:
            lines.append(f"{self.not_final} decisions whose reward window is still open (no final reward yet)")
        return tuple(lines)


@dataclass(frozen=True, eq=False)
class LoggedDataset:
    """n final decisions of one campaign in log order (time order), as arrays.

    ``feedback.action[i]`` is the chosen position in event i's eligible arms (logged order),
    ``feedback.pscore[i]`` the logged probability, ``feedback.reward[i]`` the final reward.
    ``logging_pmf`` holds the served pmf per event; its ``indptr`` is the candidate layout every
    target pmf and q_hat must share. ``seq`` are the log's row ids (used to re-read contexts).
    """

    path: Path
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
            path=self.path, campaign=self.campaign, default_reward=self.default_reward,
            feedback=LoggedFeedback(fb.action[start:stop], fb.reward[start:stop], fb.pscore[start:stop]),
            logging_pmf=RaggedMatrix(indptr, self.logging_pmf.values[lo:hi]),
            seq=self.seq[start:stop], event_ids=self.event_ids[start:stop],
            decided_at=self.decided_at[start:stop], user_keys=self.user_keys[start:stop],
            policy_versions=self.policy_versions[start:stop], exclusions=self.exclusions,
            log_filter=self.log_filter)

    def first_index_after(self, when: float) -> int:
        """Index of the first event decided strictly after ``when`` (n_events when none)."""
        return int(np.searchsorted(self.decided_at, when, side="right"))

    def decisions(self, start: int = 0, stop: int | None = None, *,
                  chunk: int = DEFAULT_CHUNK) -> Iterator[list[LoggedDecision]]:
        """Decode events ``start:stop`` from the log, ``chunk`` at a time (lists in dataset order)."""
        stop = self.n_events if stop is None else stop
        if start >= stop:
            return
        reader = LogReader(self.path)
        try:
            decode = RowDecoder(OfferSetCache(reader))
            wanted = self.seq[start:stop]
            for lo in range(0, len(wanted), chunk):
                part = wanted[lo:lo + chunk]
                rows = reader.conn().execute(
                    "SELECT * FROM decisions WHERE seq IN (SELECT value FROM json_each(?))",
                    (json.dumps(part.tolist()),)).fetchall()
                by_seq = {row["seq"]: row for row in rows}
                yield [decode(by_seq[int(s)]) for s in part]
        finally:
            reader.close()

    def learning_events(self, start: int = 0, stop: int | None = None, *,
                        chunk: int = DEFAULT_CHUNK) -> Iterator[list[LearningEvent]]:
        """The events ``start:stop`` as a policy learns them (reward = the dataset's final reward)."""
        index = start
        for batch in self.decisions(start, stop, chunk=chunk):
            events = []
            for decision in batch:
                events.append(LearningEvent(
                    context=decision.context, arm_set=decision.arm_set, chosen=int(decision.chosen),
                    probability=float(decision.probability), reward=float(self.feedback.reward[index]),
                    pmf=decision.pmf))
                index += 1
            yield events


class RowDecoder:
    """``decision_log.records.decode_row`` with the arm set shared between rows that logged the same
    candidates and eligible arms (building a 500-arm ArmSet per row made decoding ~10x slower)."""

    def __init__(self, offers: OfferSetCache, size: int = 1024) -> None:
        self._offers = offers
        self._size = size
        self._arm_sets: OrderedDict[tuple, ArmSet] = OrderedDict()

    def _arm_set(self, row: sqlite3.Row) -> ArmSet:
        key = (row["offer_set"], row["formats"], row["time_slots"], bytes(row["eligible"] or b""))
        arm_set = self._arm_sets.get(key)
        if arm_set is not None:
            self._arm_sets.move_to_end(key)
            return arm_set
        arm_set = decode_row(row, self._offers).arm_set
        self._arm_sets[key] = arm_set
        while len(self._arm_sets) > self._size:
            self._arm_sets.popitem(last=False)
        return arm_set

    def __call__(self, row: sqlite3.Row) -> LoggedDecision:
        context = DecisionContext(user_key=row["user_key"], context=json.loads(row["context"]),
                                  numeric=json.loads(row["numeric"]), campaign=row["campaign"])
        baseline = JointArm(*json.loads(row["baseline"])) if row["baseline"] else None
        return LoggedDecision(
            seq=row["seq"], event_id=row["event_id"], campaign=row["campaign"], decided_at=row["decided_at"],
            context=context, arm_set=self._arm_set(row), pmf=blob_to_pmf(row["pmf"]), chosen=row["chosen_index"],
            probability=row["probability"], policy_version=row["policy_version"],
            exploration=row["exploration"], deferred=bool(row["deferred"]), activated_at=row["activated_at"],
            learned_at=row["learned_at"], reward=row["reward"], baseline=baseline)


def campaigns_in_log(data_dir: Path) -> tuple[str, ...]:
    reader = _open_reader(data_dir)
    try:
        rows = reader.conn().execute("SELECT DISTINCT campaign FROM decisions ORDER BY campaign").fetchall()
        return tuple(row[0] for row in rows)
    finally:
        reader.close()


def _open_reader(data_dir: Path) -> LogReader:
    path = log_path(Path(data_dir))
    if not path.is_file():
        raise InvalidInput(f"no decision log at {path} (is --data-dir the server's data directory?)",
                           field="data-dir")
    reader = LogReader(path)
    try:
        reader.conn().execute("SELECT seq FROM decisions LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        reader.close()
        raise InvalidInput(f"{path} is not a decision log: {exc}", field="data-dir") from exc
    return reader


def resolve_campaign(data_dir: Path, campaign: str | None) -> str:
    """``campaign`` if the log has it; None: the log's only campaign (InvalidInput when several)."""
    present = campaigns_in_log(data_dir)
    if campaign is not None:
        if campaign not in present:
            raise InvalidInput(f"the log has no decisions for campaign {campaign!r} "
                               f"(present: {', '.join(present) or 'none'})", field="campaign")
        return campaign
    if not present:
        raise InvalidInput(f"the decision log in {data_dir} is empty", field="data-dir")
    if len(present) > 1:
        raise InvalidInput(f"the log holds several campaigns ({', '.join(present)}); choose one with --campaign",
                           field="campaign")
    return present[0]


_COLUMNS = ("seq, event_id, decided_at, user_key, eligible, pmf, chosen_index, probability, policy_version, "
            "exploration, deferred, activated_at, learned_at, reward")


def load_dataset(data_dir: Path, *, campaign: str | None = None, since: float | None = None,
                 until: float | None = None, policy_version: str | None = None,
                 config: ServiceConfig | None = None, chunk: int = DEFAULT_CHUNK) -> LoggedDataset:
    """Stream the decision log under ``data_dir`` into a :class:`LoggedDataset`.

    ``campaign`` None: the log's only campaign. ``config`` supplies the campaign's default reward
    (the embedded defaults when None). Raises InvalidInput when nothing evaluable is left.
    """
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise InvalidInput(f"chunk must be an int >= 1, got {chunk!r}", field="chunk")
    campaign = resolve_campaign(Path(data_dir), campaign)
    log_filter = LogFilter(campaign=campaign, since=since, until=until, policy_version=policy_version)
    config = config or ServiceConfig()
    default_reward = float(config.campaigns[campaign].default_reward) if campaign in config.campaigns else 0.0

    reader = _open_reader(Path(data_dir))
    clauses, params = log_filter.where()
    sql = (f"SELECT {_COLUMNS} FROM decisions WHERE {' AND '.join(['seq > ?', *clauses])} "
           "ORDER BY seq LIMIT ?")
    actions: list[int] = []
    rewards: list[float] = []
    pscores: list[float] = []
    lengths: list[int] = []
    pmf_parts: list[np.ndarray] = []  # one array per chunk
    chunk_pmfs: list[np.ndarray] = []
    seqs: list[int] = []
    times: list[float] = []
    event_ids: list[str] = []
    users: list[str] = []
    versions: list[str] = []
    no_contact = deferred_idle = open_window = 0
    last = 0
    try:
        while True:
            rows = reader.conn().execute(sql, (last, *params, chunk)).fetchall()
            if not rows:
                break
            last = rows[-1]["seq"]
            for row in rows:
                if row["exploration"] == NO_CONTACT or row["chosen_index"] is None:
                    no_contact += 1
                    continue
                if row["deferred"] and row["activated_at"] is None:
                    deferred_idle += 1
                    continue
                if row["learned_at"] is None:
                    open_window += 1
                    continue
                pmf = blob_to_pmf(row["pmf"])
                n_arms = len(blob_to_indices(row["eligible"]))
                if len(pmf) != n_arms or not 0 <= row["chosen_index"] < n_arms:
                    raise InvalidInput(f"log row {row['seq']} is inconsistent: {n_arms} eligible arms, "
                                       f"pmf of {len(pmf)}, chosen {row['chosen_index']}", field="data-dir")
                actions.append(row["chosen_index"])
                rewards.append(default_reward if row["reward"] is None else float(row["reward"]))
                pscores.append(float(row["probability"]))
                lengths.append(n_arms)
                chunk_pmfs.append(pmf)
                seqs.append(row["seq"])
                times.append(float(row["decided_at"]))
                event_ids.append(row["event_id"])
                users.append(row["user_key"])
                versions.append(row["policy_version"])
            if chunk_pmfs:
                pmf_parts.append(np.concatenate(chunk_pmfs))
                chunk_pmfs.clear()
    finally:
        reader.close()

    exclusions = Exclusions(no_contact=no_contact, deferred_not_activated=deferred_idle, not_final=open_window)
    if not actions:
        why = "; ".join(exclusions.reasons()) or "no decisions match the filters"
        raise InvalidInput(f"no evaluable decisions for campaign {campaign!r}: {why}", field="data-dir")
    indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return LoggedDataset(
        path=log_path(Path(data_dir)), campaign=campaign, default_reward=default_reward,
        feedback=LoggedFeedback(np.asarray(actions, dtype=np.int64), np.asarray(rewards), np.asarray(pscores)),
        logging_pmf=RaggedMatrix(indptr, np.concatenate(pmf_parts)),
        seq=_readonly(np.asarray(seqs, dtype=np.int64)), event_ids=tuple(event_ids),
        decided_at=_readonly(np.asarray(times, dtype=np.float64)), user_keys=tuple(users),
        policy_versions=tuple(versions), exclusions=exclusions, log_filter=log_filter)


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array

