"""Export the decision log as Parquet files (pyarrow): one row per decision, readable by DuckDB, Spark
and pandas, and by `offline_eval.parquet_dataset` for offline evaluation without the log.

``DIR`` is created and holds nothing but ``part-00000.parquet``, ``part-00001.parquet``, ... in log
order (``seq`` ascending across and within files), each of at most ``rows_per_file`` rows. The log is
streamed and written one row group at a time (`ROW_GROUP_ROWS` rows, fewer for large arm sets), so
memory stays bounded whatever the size of the log or of a file.

Columns (`export_schema`; times are UTC timestamps in microseconds):

- ``seq`` (the log's order), ``event_id``, ``campaign``, ``decided_at`` (and ``decided_at_s``: the same
  time as logged, unix seconds as a double, so filters and time windows match the log's exactly),
  ``user_key`` (the keyed hash, never the id), ``policy_version``, ``exploration``, ``no_contact_reason``;
- the chosen arm: ``chosen_index`` (position in the arm lists below), ``offer_id``, ``format``,
  ``time_slot`` (null for ``no_contact``) and ``probability`` (exact, as logged);
- the reward: ``reward`` is the *final* reward — the received one (clipped to the campaign's
  ``reward_range``) or the campaign's default once the window closed without one — and null while the
  event is not final; ``rewarded`` says whether a reward arrived; ``final`` / ``learned_at`` when the
  reward became final;
- ``deferred``, ``activated`` / ``activated_at``, ``quarantined`` and ``skip_learn`` (what DSJSON calls
  ``_skipLearn``: not final, never activated, or quarantined);
- the logged pmf over the eligible arms: ``pmf`` (list of float64) with the arms as ``arm_offer_id``,
  ``arm_format``, ``arm_time_slot`` (lists of the same length, logged order), so off-policy estimates
  need nothing else;
- what target policies score: ``context`` (map string→string), ``numeric`` (map string→double),
  ``offer_set_id`` and ``offer_set`` (the logged offer snapshot of the eligible arms' offers, canonical
  JSON; dictionary-encoded, so repeated snapshots cost little), and ``arm_set_id`` (a content hash of the
  snapshot and the arm lists: rows with the same one share one decoded arm set).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from decision_log.codec import encode_offers
from decision_log.database import open_log
from decision_log.records import LogFilter, LoggedDecision, RewardDefaults
from offerbandit.checks import check_scalar
from offerbandit.errors import InvalidInput

__all__ = ["DEFAULT_ROWS_PER_FILE", "PART_PATTERN", "MAX_GROUP_ARMS", "ROW_GROUP_ROWS", "ParquetExport", "export_parquet",
           "export_schema", "part_files"]

DEFAULT_ROWS_PER_FILE = 100_000
#: Rows per row group inside a file: the unit readers skip by ``seq`` statistics.
ROW_GROUP_ROWS = 10_000
#: A row group is written early once its arm lists hold this many entries (500-arm decisions).
MAX_GROUP_ARMS = 1_000_000
PART_PATTERN = "part-{:05d}.parquet"


def _schema():  # noqa: ANN202 - pyarrow is imported only by whoever exports or reads Parquet
    import pyarrow as pa

    when = pa.timestamp("us", tz="UTC")
    return pa.schema([
        ("seq", pa.int64()), ("event_id", pa.string()), ("campaign", pa.string()), ("decided_at", when),
        ("decided_at_s", pa.float64()),
        ("user_key", pa.string()), ("policy_version", pa.string()), ("exploration", pa.string()),
        ("no_contact_reason", pa.string()), ("chosen_index", pa.int32()), ("offer_id", pa.string()),
        ("format", pa.string()), ("time_slot", pa.string()), ("probability", pa.float64()),
        ("reward", pa.float64()), ("rewarded", pa.bool_()), ("final", pa.bool_()), ("learned_at", when),
        ("deferred", pa.bool_()), ("activated", pa.bool_()), ("activated_at", when),
        ("quarantined", pa.bool_()), ("skip_learn", pa.bool_()),
        ("pmf", pa.list_(pa.float64())), ("arm_offer_id", pa.list_(pa.string())),
        ("arm_format", pa.list_(pa.string())), ("arm_time_slot", pa.list_(pa.string())),
        ("context", pa.map_(pa.string(), pa.string())), ("numeric", pa.map_(pa.string(), pa.float64())),
        ("offer_set_id", pa.string()), ("offer_set", pa.string()), ("arm_set_id", pa.string()),
        ("customer_features", pa.string()),
    ])


def export_schema():  # noqa: ANN201
    """The ``pyarrow.Schema`` of every exported file (pyarrow is imported on first use, not with the log)."""
    return _schema()


@dataclass(frozen=True)
class ParquetExport:
    """What an export wrote: ``rows`` decisions in ``files`` (in log order)."""

    rows: int
    files: tuple[Path, ...]


def part_files(directory: Path | str) -> tuple[Path, ...]:
    """The part files of an export directory in log order (InvalidInput when it holds none)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a directory of Parquet files", field="parquet")
    files = tuple(sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".parquet"))
    if not files:
        raise InvalidInput(f"{folder} holds no .parquet files (write one with "
                           "`offerbandit export --format parquet --out DIR`)", field="parquet")
    return files


def _prepare(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInput(f"--out {out_dir} exists and is not a directory", field="out")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise InvalidInput(f"--out {out_dir} is not empty: export into a new or empty directory", field="out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"cannot create {out_dir}: {exc.strerror}", field="out") from exc


class _Columns:
    """One row group's rows, column by column (plain Python lists handed to pyarrow at once)."""

    def __init__(self, names: list[str]) -> None:
        self.values: dict[str, list] = {name: [] for name in names}
        self.rows = 0
        self.arms = 0
        # the decoder shares one offers mapping between rows of one arm set: encode each once a group
        self._snapshots: dict[int, tuple[object, str, str]] = {}  # id(offers) -> (offers, id, json)
        self._arm_sets: dict[int, tuple[object, str]] = {}  # id(arm_set) -> (arm_set, arm_set_id)

    def _snapshot(self, decision: LoggedDecision) -> tuple[str, str]:
        offers = decision.arm_set.offers
        found = self._snapshots.get(id(offers))
        if found is None or found[0] is not offers:
            found = (offers, *encode_offers([offers[name] for name in sorted(offers)]))
            self._snapshots[id(offers)] = found
        return found[1], found[2]

    def _arm_set_id(self, decision: LoggedDecision, snapshot_id: str) -> str:
        arm_set = decision.arm_set
        found = self._arm_sets.get(id(arm_set))
        if found is None or found[0] is not arm_set:
            text = json.dumps([snapshot_id, [[a.offer_id, a.format, a.time_slot] for a in arm_set.arms]],
                              separators=(",", ":"), ensure_ascii=False)
            found = (arm_set, hashlib.sha256(text.encode("utf-8")).hexdigest()[:32])
            self._arm_sets[id(arm_set)] = found
        return found[1]

    def add(self, d: LoggedDecision, defaults: RewardDefaults) -> None:
        final = d.learned_at is not None
        chosen = d.chosen_arm
        reward = None
        if final:
            reward = defaults.clip(d.campaign, d.reward if d.reward is not None else defaults.of(d.campaign))
        arms = d.arm_set.arms
        snapshot_id, snapshot = self._snapshot(d)
        v = self.values
        for name, value in (
                ("seq", d.seq), ("event_id", d.event_id), ("campaign", d.campaign),
                ("decided_at", _micros(d.decided_at)), ("decided_at_s", float(d.decided_at)),
                ("user_key", d.context.user_key),
                ("policy_version", d.policy_version), ("exploration", d.exploration),
                ("no_contact_reason", d.no_contact_reason), ("chosen_index", d.chosen),
                ("offer_id", None if chosen is None else chosen.offer_id),
                ("format", None if chosen is None else chosen.format),
                ("time_slot", None if chosen is None else chosen.time_slot),
                ("probability", float(d.probability)), ("reward", reward), ("rewarded", d.rewarded),
                ("final", final), ("learned_at", _micros(d.learned_at)), ("deferred", d.deferred),
                ("activated", d.activated_at is not None), ("activated_at", _micros(d.activated_at)),
                ("quarantined", d.quarantined), ("skip_learn", not final or d.quarantined),
                ("pmf", d.pmf), ("arm_offer_id", [a.offer_id for a in arms]),
                ("arm_format", [a.format for a in arms]), ("arm_time_slot", [a.time_slot for a in arms]),
                ("context", list(d.context.context.items())), ("numeric", list(d.context.numeric.items())),
                ("offer_set_id", snapshot_id), ("offer_set", snapshot),
                ("arm_set_id", self._arm_set_id(d, snapshot_id)),
                ("customer_features", d.context.customer.to_json() if d.context.customer is not None else None)):
            v[name].append(value)
        self.rows += 1
        self.arms += len(arms)


def _micros(seconds: float | None) -> int | None:
    return None if seconds is None else int(round(float(seconds) * 1_000_000))


_DICTIONARY_COLUMNS = ["campaign", "policy_version", "exploration", "no_contact_reason", "offer_id", "format",
                       "time_slot", "offer_set_id", "offer_set", "arm_set_id", "arm_offer_id", "arm_format", "arm_time_slot",
                       "user_key"]


def _table(columns: _Columns, schema):  # noqa: ANN001, ANN202 - pyarrow objects
    import numpy as np
    import pyarrow as pa

    arrays = []
    for field in schema:
        values = columns.values[field.name]
        if field.name == "pmf":  # one float64 buffer and offsets, not a Python float per entry
            lengths = np.fromiter((len(p) for p in values), dtype=np.int64, count=len(values))
            offsets = np.zeros(len(values) + 1, dtype=np.int32)
            np.cumsum(lengths, out=offsets[1:])
            flat = np.concatenate(values).astype(np.float64) if values else np.zeros(0)
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=pa.float64())))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


class _PartWriter:
    """Writes row groups into ``part-NNNNN.parquet`` files of at most ``rows_per_file`` rows each.

    Memory is bounded by one row group (`ROW_GROUP_ROWS` rows, or fewer when their arm lists reach
    `MAX_GROUP_ARMS` entries), whatever ``rows_per_file`` is."""

    def __init__(self, out: Path, rows_per_file: int, defaults: RewardDefaults) -> None:
        self.schema = _schema()
        self.out, self.rows_per_file, self.defaults = out, rows_per_file, defaults
        self.files: list[Path] = []
        self.rows = 0
        self._writer = None
        self._in_file = 0
        self._group = _Columns(self.schema.names)

    def add(self, decision: LoggedDecision) -> None:
        self._group.add(decision, self.defaults)
        self._in_file += 1
        self.rows += 1
        if self._in_file == self.rows_per_file:
            self._flush()
            self._close_file()
        elif self._group.rows == ROW_GROUP_ROWS or self._group.arms >= MAX_GROUP_ARMS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow.parquet as pq

        if self._group.rows == 0 and self.files:
            return
        if self._writer is None:
            self.files.append(self.out / PART_PATTERN.format(len(self.files)))
            self._writer = pq.ParquetWriter(self.files[-1], self.schema, compression="zstd",
                                            use_dictionary=_DICTIONARY_COLUMNS)
        self._writer.write_table(_table(self._group, self.schema), row_group_size=max(self._group.rows, 1))
        self._group = _Columns(self.schema.names)

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._in_file = 0

    def close(self) -> None:
        """Write what is buffered (an empty export still gets one file, so readers see the schema)."""
        if self._group.rows or not self.files or self._writer is not None:
            self._flush()
        self._close_file()

    def abort(self) -> None:
        try:
            self._close_file()
        finally:
            for path in self.files:
                path.unlink(missing_ok=True)


def export_parquet(log_location: Path | str, out_dir: Path | str, *, campaign: str | None = None,
                   defaults: RewardDefaults | None = None,
                   rows_per_file: int = DEFAULT_ROWS_PER_FILE, until: float | None = None) -> ParquetExport:
    """Write every decision (optionally of one campaign) under ``out_dir`` as Parquet part files.

    ``log_location``: a data directory or a log URL (see `open_log`). ``defaults``: each campaign's
    default reward and reward range (0.0 and [0, 1] when None). ``out_dir`` must be new or empty; it
    is created. An empty log still writes one (empty) file, so readers see the schema. ``until``: only
    decisions decided before it (retention exports what it is about to delete)."""
    check_scalar(rows_per_file, "rows_per_file", int, low=1)
    out = Path(out_dir)
    with open_log(log_location) as log:
        _prepare(out)
        writer = _PartWriter(out, rows_per_file, defaults or RewardDefaults())
        try:
            for decision in log.decisions(LogFilter(campaign=campaign, until=until), chunk=min(rows_per_file, 5000)):
                writer.add(decision)
            writer.close()
        except BaseException:  # leave no half export behind (a reader would take it for a whole one)
            writer.abort()
            raise
    return ParquetExport(writer.rows, tuple(writer.files))
