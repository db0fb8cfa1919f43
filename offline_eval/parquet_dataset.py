"""Load a Parquet export of the decision log (``offerbandit export --format parquet``) into the same
`LoggedDataset` the log loader builds, so every estimator, target and reward model runs on it unchanged.

The export is read file by file and batch by batch (``pyarrow.parquet.ParquetFile.iter_batches``),
only the columns feedback needs; the pmfs land in one ragged (CSR-like) array, never a dense n x arms
matrix. Which decisions count is the log's rule (`decision_log.counting`), applied to the exported
flags: no_contact decisions, deferred decisions never activated and decisions not final are left out
and counted in `Exclusions`. The reward is the exported final reward (the export applied the default
reward and the campaign's range when it was written). Contexts and arm sets are decoded again from the
files only when a target or the reward model asks (`ParquetDecisions`), skipping row groups by their
``seq`` statistics.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from decision_log.codec import decode_offers
from decision_log.parquet_export import part_files
from decision_log.records import Exclusions, LogFilter, LoggedDecision, RewardDefaults
from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput
from offline_eval.feedback import LoggedFeedback
from offline_eval.log_dataset import DEFAULT_CHUNK, LoggedDataset, check_present
from offline_eval.ragged import RaggedMatrix
from policies.sampler import HOLDOUT, NO_CONTACT
from policies.types import ArmSet, CustomerFeatures, DecisionContext, JointArm, Offer

__all__ = ["FEEDBACK_COLUMNS", "ParquetDecisions", "campaigns_in_export", "is_parquet_export", "load_parquet_dataset"]

#: What the feedback pass reads of each file (contexts, arms and offer snapshots are left on disk).
FEEDBACK_COLUMNS = ("seq", "event_id", "campaign", "decided_at_s", "user_key", "policy_version", "exploration",
                    "chosen_index", "probability", "reward", "final", "deferred", "activated", "pmf")
_TIMES = ("learned_at", "activated_at")  # decided_at is read exactly from decided_at_s
_ARM_SET_CACHE = 4096
_DECODE_ROWS = 1000


def is_parquet_export(where: Path | str) -> bool:
    """True when ``where`` is a directory of ``.parquet`` files without a decision log of its own."""
    path = Path(str(where))
    if "://" in str(where) or not path.is_dir() or (path / "decisions.db").exists():
        return False
    return any(p.suffix == ".parquet" for p in path.iterdir())


def campaigns_in_export(directory: Path | str) -> tuple[str, ...]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    found: set[str] = set()
    for path in part_files(directory):
        for batch in pq.ParquetFile(path).iter_batches(columns=["campaign"]):
            found.update(pc.unique(batch.column(0)).to_pylist())
    return tuple(sorted(found))


def _selected(batch, log_filter: LogFilter):  # noqa: ANN001, ANN202 - a pyarrow RecordBatch
    import pyarrow.compute as pc

    mask = pc.equal(batch["campaign"], log_filter.campaign)
    if log_filter.since is not None:
        mask = pc.and_(mask, pc.greater_equal(batch["decided_at_s"], log_filter.since))
    if log_filter.until is not None:
        mask = pc.and_(mask, pc.less(batch["decided_at_s"], log_filter.until))
    if log_filter.policy_version is not None:
        mask = pc.and_(mask, pc.equal(batch["policy_version"], log_filter.policy_version))
    return batch.filter(mask)


def _counted(batch) -> tuple[object, Exclusions]:  # noqa: ANN001
    """The rows that count for evaluation and why the others do not (`decision_log.counting`'s rule)."""
    import pyarrow.compute as pc

    held = pc.equal(batch["exploration"], HOLDOUT)
    contacted = pc.and_(pc.is_valid(batch["chosen_index"]), pc.not_equal(batch["exploration"], NO_CONTACT))
    contacted = pc.and_(contacted, pc.invert(held))
    shown = pc.and_(contacted, pc.or_(pc.invert(batch["deferred"]), batch["activated"]))
    keep = pc.and_(shown, batch["final"])

    def count(mask) -> int:  # noqa: ANN001
        return int(pc.sum(pc.cast(mask, "int64")).as_py() or 0)

    left_out = Exclusions(no_contact=count(pc.and_(pc.invert(contacted), pc.invert(held))),
                          deferred_not_activated=count(pc.and_(contacted, pc.invert(shown))),
                          not_final=count(pc.and_(shown, pc.invert(batch["final"]))), holdout=count(held))
    return batch.filter(keep), left_out


@dataclass
class _Columns:
    """The feedback kept so far, one array (or list) per chunk."""

    actions: list[np.ndarray]
    rewards: list[np.ndarray]
    pscores: list[np.ndarray]
    lengths: list[np.ndarray]
    pmfs: list[np.ndarray]
    seqs: list[np.ndarray]
    times: list[np.ndarray]
    event_ids: list[str]
    users: list[str]
    versions: list[str]

    def add(self, kept) -> None:  # noqa: ANN001 - a pyarrow RecordBatch of counted rows
        import pyarrow.compute as pc

        lengths = pc.list_value_length(kept["pmf"]).to_numpy(zero_copy_only=False).astype(np.int64)
        actions = kept["chosen_index"].to_numpy(zero_copy_only=False).astype(np.int64)
        bad = (actions < 0) | (actions >= lengths)
        if bad.any():
            seq = kept["seq"][int(np.argmax(bad))].as_py()
            raise InvalidInput(f"exported decision seq {seq} is inconsistent: chosen index outside its pmf",
                               field="parquet")
        rewards = kept["reward"].to_numpy(zero_copy_only=False).astype(np.float64)
        if np.isnan(rewards).any():
            raise InvalidInput("a final exported decision has no reward: the export is damaged", field="parquet")
        self.actions.append(actions)
        self.rewards.append(rewards)
        self.pscores.append(kept["probability"].to_numpy(zero_copy_only=False).astype(np.float64))
        self.lengths.append(lengths)
        self.pmfs.append(kept["pmf"].flatten().to_numpy(zero_copy_only=False).astype(np.float64))
        self.seqs.append(kept["seq"].to_numpy(zero_copy_only=False).astype(np.int64))
        self.times.append(kept["decided_at_s"].to_numpy(zero_copy_only=False).astype(np.float64))
        self.event_ids.extend(kept["event_id"].to_pylist())
        self.users.extend(kept["user_key"].to_pylist())
        self.versions.extend(kept["policy_version"].to_pylist())


def _joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)


def load_parquet_dataset(directory: Path | str, *, campaign: str | None = None, since: float | None = None,
                         until: float | None = None, policy_version: str | None = None,
                         defaults: RewardDefaults | None = None, chunk: int = DEFAULT_CHUNK) -> LoggedDataset:
    """Stream a Parquet export into a :class:`LoggedDataset` (``chunk`` rows a batch).

    ``campaign`` None: the export's only campaign. ``defaults`` names the dataset's default reward and
    range (the rewards themselves were made final by the export). InvalidInput when nothing evaluable
    is left, when the directory holds no export, or when its rows are out of log order."""
    import pyarrow.parquet as pq

    check_scalar(chunk, "chunk", int, low=1)
    files = part_files(directory)
    campaign = check_present(campaigns_in_export(directory), campaign, f"the Parquet export {directory}")
    log_filter = LogFilter(campaign=campaign, since=since, until=until, policy_version=policy_version)
    defaults = defaults or RewardDefaults()
    kept = _Columns([], [], [], [], [], [], [], [], [], [])
    exclusions = Exclusions()
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk, columns=list(FEEDBACK_COLUMNS)):
            counted, left_out = _counted(_selected(batch, log_filter))
            exclusions = exclusions + left_out
            if counted.num_rows:
                kept.add(counted)
    if not kept.actions:
        why = "; ".join(exclusions.reasons()) or "no decisions match the filters"
        raise InvalidInput(f"no evaluable decisions for campaign {campaign!r}: {why}", field="parquet")
    seq = _joined(kept.seqs, np.int64)
    if (np.diff(seq) <= 0).any():
        raise InvalidInput(f"the Parquet export {directory} is not in log order (seq must ascend across "
                           "part-NNNNN files)", field="parquet")
    lengths = _joined(kept.lengths, np.int64)
    indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    times = _joined(kept.times, np.float64)
    for array in (seq, times):
        array.flags.writeable = False
    return LoggedDataset(
        log=str(Path(directory).resolve()), campaign=campaign, default_reward=defaults.of(campaign),
        feedback=LoggedFeedback(_joined(kept.actions, np.int64), _joined(kept.rewards, np.float64),
                                _joined(kept.pscores, np.float64)),
        logging_pmf=RaggedMatrix(indptr, _joined(kept.pmfs, np.float64)), seq=seq,
        event_ids=tuple(kept.event_ids), decided_at=times, user_keys=tuple(kept.users),
        policy_versions=tuple(kept.versions), exclusions=exclusions, log_filter=log_filter,
        reward_range=defaults.range_of(campaign), reader=ParquetDecisions(tuple(files)))


@dataclass(frozen=True, eq=False)
class ParquetDecisions:
    """Decodes exported decisions by seq (`offline_eval.log_dataset.DecisionReader`): reads only the
    row groups whose ``seq`` range holds a wanted seq; arm sets are shared between rows, as the log's
    decoder shares them."""

    files: tuple[Path, ...]

    def decisions(self, seqs: np.ndarray, chunk: int) -> Iterator[list[LoggedDecision]]:
        import pyarrow.parquet as pq

        wanted = np.asarray(seqs, dtype=np.int64)
        if wanted.size == 0:
            return
        offers: dict[str, dict[str, Offer]] = {}
        arm_sets: dict[str, ArmSet] = {}
        out: list[LoggedDecision] = []
        for path in self.files:
            handle = pq.ParquetFile(path)
            seq_column = handle.schema_arrow.get_field_index("seq")
            for group in range(handle.metadata.num_row_groups):
                stats = handle.metadata.row_group(group).column(seq_column).statistics
                if stats is not None and stats.has_min_max:
                    lo, hi = np.searchsorted(wanted, [stats.min, stats.max + 1])
                    if lo == hi:
                        continue
                table = handle.read_row_group(group)
                rows = np.flatnonzero(np.isin(table["seq"].to_numpy(), wanted))
                if rows.size == 0:
                    continue
                for lo in range(0, rows.size, _DECODE_ROWS):  # Python objects for a slice at a time
                    for decision in _decisions(table.take(rows[lo:lo + _DECODE_ROWS]), offers, arm_sets):
                        out.append(decision)
                        if len(out) == chunk:
                            yield out
                            out = []
        if out:
            yield out


_ARM_COLUMNS = ("arm_offer_id", "arm_format", "arm_time_slot")


def _decisions(table, offers: dict[str, dict[str, Offer]],  # noqa: ANN001 - a pyarrow Table
               arm_sets: dict[str, ArmSet]) -> Iterator[LoggedDecision]:
    """Decode rows; the pmfs come as one numpy buffer and the arm lists are read only for arm sets not
    decoded yet (rows share them by ``arm_set_id``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    pmf_column = table["pmf"].combine_chunks()
    values = pmf_column.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
    bounds = np.zeros(table.num_rows + 1, dtype=np.int64)
    np.cumsum(pc.list_value_length(pmf_column).to_numpy(zero_copy_only=False), out=bounds[1:])
    plain = table.drop_columns(["pmf", *_ARM_COLUMNS])
    for name in _TIMES:
        plain = plain.set_column(plain.schema.get_field_index(name), name, plain[name].cast(pa.int64()))
    for i, row in enumerate(plain.to_pylist()):
        arm_set = arm_sets.get(row["arm_set_id"])
        if arm_set is None:
            if len(arm_sets) >= _ARM_SET_CACHE:
                arm_sets.clear()
            snapshot = offers.get(row["offer_set_id"])
            if snapshot is None:
                snapshot = offers[row["offer_set_id"]] = {o.id: o for o in decode_offers(row["offer_set"])}
            lists = [table[name][i].as_py() for name in _ARM_COLUMNS]
            arms = tuple(JointArm(o, f, t) for o, f, t in zip(*lists))
            arm_set = arm_sets[row["arm_set_id"]] = ArmSet(arms=arms,
                                                           offers={a.offer_id: snapshot[a.offer_id] for a in arms})
        yield _decision(row, arm_set, values[bounds[i]:bounds[i + 1]].copy())


def _time(micros: int | None) -> float | None:
    return None if micros is None else micros / 1e6


def _decision(row: dict, arm_set: ArmSet, pmf: np.ndarray) -> LoggedDecision:
    features = row.get("customer_features")  # as the decision used them (exports before it have none)
    context = DecisionContext(user_key=row["user_key"], context=dict(row["context"] or ()),
                              numeric=dict(row["numeric"] or ()), campaign=row["campaign"],
                              customer=CustomerFeatures.from_json(features) if features else None)
    return LoggedDecision(
        seq=row["seq"], event_id=row["event_id"], campaign=row["campaign"], decided_at=row["decided_at_s"],
        context=context, arm_set=arm_set, pmf=pmf, chosen=row["chosen_index"],
        probability=row["probability"], policy_version=row["policy_version"], exploration=row["exploration"],
        deferred=row["deferred"], activated_at=_time(row["activated_at"]), learned_at=_time(row["learned_at"]),
        reward=row["reward"], no_contact_reason=row["no_contact_reason"] or "", quarantined=row["quarantined"],
        rewarded=row["rewarded"])
