"""Bytes on disk per logged 128-arm decision: the compact log (issue 15) against the old row format.

    python bench/bench_log_size.py [--quick | --tiny] [--json PATH]

Decides N 128-arm requests (bench/common.py customers, ``DecideBatch`` of 64) through a real in-process
server into (a) a SQLite log and (b) a PostgreSQL log (a throwaway cluster, as bench_pg_log.py starts one).
Then the same decisions, read back through the log, are written in the old format (float64 pmf and policy
pmf, u4 eligible indices, formats/time slots/removal counts as JSON per row) into a second log of each kind,
and both are measured the same way:
  - SQLite: after ``PRAGMA wal_checkpoint(TRUNCATE)``, page count x page size of the file minus that of an
    empty migrated log, per decision (tables and indexes: everything the decisions added); the ``dbstat``
    split into the decisions table, its indexes, arm_sets and offer_sets is shown beside it;
  - PostgreSQL: ``pg_total_relation_size`` (heap + TOAST + indexes) of decisions + arm_sets + offer_sets,
    after ``VACUUM``, minus the same of the empty log, per decision.
Also: what a 2,000-offer offer set costs (decided through the server with 2,000 offers x 1 format x 1 slot):
the offer_sets row, stored once per distinct set, and each further decision's row.
Goal: ``log_bytes_per_decision`` = 1024 B / the compact SQLite log's bytes per decision (>= 1: at most 1 KB).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc  # noqa: E402
import psycopg  # noqa: E402

from bench.common import OUT_DIR, Report, customers, decide_request, parse_flags  # noqa: E402
from decision_log import (DecisionRow, StoredDecision, encode_offers, indices_to_blob, open_log,  # noqa: E402
                          pmf_to_blob)
from decision_log.sqlite.schema import migrate  # noqa: E402
from offers.v1 import decision_pb2 as pb  # noqa: E402
from offers.v1 import decision_pb2_grpc as pb_grpc  # noqa: E402
from service.config import parse_config  # noqa: E402
from service.server import DecisionServer  # noqa: E402
from tests.postgres import PostgresCluster, find_postgres_bin  # noqa: E402

SIZES = {"full": 20_000, "quick": 4_000, "tiny": 256}  # decisions
BATCH = 64
N_ARMS = 128
BIG_OFFERS = 2000
VARIANTS = {"compact": "default settings (novelty beta = 0.1: the policy pmf differs, so it is stored)",
            "no novelty": "novelty beta = 0 (the policy pmf equals the served one: NULL)",
            "4 KB pages": "default settings, the log file created with SQLite's default 4 KB pages",
            "old": "old format"}
PG_TABLES = ("decisions", "arm_sets", "offer_sets")


NO_NOVELTY = "[campaigns.default.novelty]\nbeta = 0.0\n"


def decide(log_url: str, data_dir: Path, requests: list[pb.DecideRequest], batch: int = BATCH,
           config: str = "") -> list[str]:
    """Decide ``requests`` through a real server logging to ``log_url``, in batches; the event ids."""
    server = DecisionServer(parse_config(f'[log]\nurl = "{log_url}"\n{config}'), data_dir, host="127.0.0.1",
                            port=0, start_registry=False)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.DecisionServiceStub(channel)
            ids = []
            for i in range(0, len(requests), batch):
                answer = stub.DecideBatch(pb.DecideBatchRequest(requests=requests[i:i + batch]), timeout=120)
                ids += [d.event_id for d in answer.decisions]
            return ids
    finally:
        server.stop(grace=5)


def old_row(stored: StoredDecision, offers_json: str, user_key: str) -> DecisionRow:
    """The decision as the log wrote it before issue 15 (float64 blobs, u4 indices, JSON per row)."""
    d = stored.decision
    arm = d.chosen_arm
    removed = {name: getattr(stored.removed, name) for name in stored.removed.__dataclass_fields__}
    return DecisionRow(
        event_id=d.event_id, campaign=d.campaign, decided_at=d.decided_at, user_key=user_key,
        context_json=json.dumps(dict(d.context.context), separators=(",", ":")),
        numeric_json=json.dumps(dict(d.context.numeric), separators=(",", ":")), offer_set_id=stored.offer_set_id,
        offer_set_json=offers_json, formats_json=json.dumps(list(stored.formats)),
        time_slots_json=json.dumps(list(stored.time_slots)), eligible=indices_to_blob(stored.eligible),
        pmf=pmf_to_blob(d.pmf), policy_pmf=pmf_to_blob(stored.policy_pmf), chosen_index=d.chosen,
        offer_id=arm.offer_id if arm else "", format=arm.format if arm else "", time_slot=arm.time_slot if arm else "",
        probability=d.probability, policy_version=d.policy_version, exploration=d.exploration, beta=stored.beta,
        deferred=d.deferred, learn_due_at=stored.learn_due_at,
        baseline_json=(json.dumps([d.baseline.offer_id, d.baseline.format, d.baseline.time_slot])
                       if d.baseline else None),
        no_contact_reason=d.no_contact_reason, removed=json.dumps(removed), fingerprint=d.fingerprint)


def rewrite_old(source_url: str, target_url: str, ids: list[str]) -> None:
    """The same decisions, read back through the log's decoder, written the old way into ``target_url``."""
    with open_log(source_url) as source, open_log(target_url, writable=True) as target:
        offers_json: dict[str, str] = {}
        rows = []
        for event_id in ids:
            stored = source.stored_decision(event_id)
            if stored.offer_set_id not in offers_json:
                offers_json[stored.offer_set_id] = encode_offers(source.offers(stored.offer_set_id))[1]
            rows.append(old_row(stored, offers_json[stored.offer_set_id], stored.decision.context.user_key))
        for i in range(0, len(rows), 512):
            target.insert_decisions(rows[i:i + 512]).result(120)


def sqlite_bytes(path: Path) -> tuple[int, dict[str, int]]:
    """The file's pages x page size after a full checkpoint, and the bytes of each table or index (dbstat)."""
    import sqlite3
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        total = conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
        parts = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    finally:
        conn.close()
    return total, parts


def empty_sqlite(path: Path, page_size: int = 4096) -> tuple[int, dict[str, int]]:
    """A migrated, empty log at ``path`` with ``page_size`` (the server then opens it as it is); its bytes."""
    import sqlite3
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA page_size = {int(page_size)}")
        conn.execute("PRAGMA journal_mode=WAL")
        migrate(conn, path, create=True)
    finally:
        conn.close()
    return sqlite_bytes(path)


def pg_bytes(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM")
        return sum(conn.execute("SELECT pg_total_relation_size(%s)", (t,)).fetchone()[0] for t in PG_TABLES)


def sqlite_split(parts: dict[str, int], empty: dict[str, int]) -> tuple[int, int, int, int]:
    """Bytes added to: the decisions table, its indexes, arm_sets (+ its index), offer_sets (+ its index)."""
    def added(names: list[str]) -> int:
        return sum(parts.get(n, 0) - empty.get(n, 0) for n in names)
    index_names = [n for n in parts if n.startswith(("idx_decisions", "sqlite_autoindex_decisions"))]
    return (added(["decisions"]), added(index_names), added([n for n in parts if "arm_sets" in n]),
            added([n for n in parts if "offer_sets" in n]))


def main() -> None:
    args = parse_flags(__doc__.splitlines()[0])
    report = Report("bench_log_size", args.mode)
    n = SIZES[args.mode]
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        sys.exit("log_size: PostgreSQL is not installed (no initdb on PATH or under /usr/lib/postgresql/*/bin)")
    root = OUT_DIR / f"log_size_{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")  # a replica must name one
    requests = [decide_request(c, N_ARMS) for c in customers(n, seed=15)]
    cluster = PostgresCluster(bin_dir)
    try:
        sizes: dict[str, float] = {}
        splits: dict[str, list[float]] = {}
        for name, page_size, config in (("compact", 16384, ""), ("no novelty", 16384, NO_NOVELTY),
                                        ("4 KB pages", 4096, "")):
            empty_total, empty_split = empty_sqlite(root / f"empty-{page_size}.db", page_size)
            path = root / f"{name.replace(' ', '_')}.db"
            empty_sqlite(path, page_size)
            ids = decide(f"sqlite:///{path}", root / f"serve-{len(sizes)}", requests, config=config)
            files = {name: path}
            if name == "compact":  # the same decisions the old way, into a log of the same page size
                files["old"] = root / "old.db"
                empty_sqlite(files["old"], page_size)
                rewrite_old(f"sqlite:///{path}", f"sqlite:///{files['old']}", ids)
            for label, file in files.items():
                total, parts = sqlite_bytes(file)
                sizes[f"sqlite {label}"] = (total - empty_total) / len(ids)
                splits[label] = [v / len(ids) for v in sqlite_split(parts, empty_split)]
        pg_empty = pg_bytes(cluster.new_database())
        pg_compact, pg_old = cluster.new_database(), cluster.new_database()
        pg_ids = decide(pg_compact, root / "serve-pg", requests)
        rewrite_old(pg_compact, pg_old, pg_ids)
        for name, url in (("compact", pg_compact), ("old", pg_old)):
            sizes[f"postgres {name}"] = (pg_bytes(url) - pg_empty) / len(pg_ids)
        big = big_offer_sets(root, 3 if args.mode == "tiny" else 10)
    finally:
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)
    rows = []
    for backend, variants in (("sqlite", ("compact", "no novelty", "4 KB pages")), ("postgres", ("compact",))):
        old = sizes[f"{backend} old"]
        for variant in variants:
            compact = sizes[f"{backend} {variant}"]
            rows.append([f"{backend}, {VARIANTS[variant]}", len(ids), round(compact), round(old), old / compact])
    report.table(f"Bytes on disk per logged {N_ARMS}-arm decision ({n:,} decisions decided through the server, "
                 "DecideBatch of 64; old format: the same decisions rewritten the pre-issue-15 way, default "
                 "settings)", ["log", "decisions", "compact B/decision", "old format B/decision", "old / compact"],
                 rows)
    report.table("SQLite bytes per decision by part (dbstat; the file total above also counts free pages)",
                 ["format", "decisions table", "decisions indexes", "arm_sets", "offer_sets"],
                 [[VARIANTS.get(name, name), *[round(v) for v in splits[name]]] for name in splits])
    report.table(f"{BIG_OFFERS:,}-offer offer sets (x 1 format x 1 slot = {BIG_OFFERS:,} arms), SQLite, compact log",
                 ["what", "bytes"],
                 [["one distinct offer set, stored once (offer_sets row)", round(big[0])],
                  ["each decision's row over those 2,000 arms (float32 pmf, no bitmask: all eligible)", round(big[1])],
                  ["the same decision in the old format (two float64 pmfs, u4 indices)", round(big[2])]])
    report.note("SQLite: page count x page size after PRAGMA wal_checkpoint(TRUNCATE), minus an empty migrated log; "
                "PostgreSQL: pg_total_relation_size of decisions + arm_sets + offer_sets (heap, TOAST, indexes) "
                "after VACUUM, minus the empty log's")
    report.note("compact row: float32 pmf over the eligible arms (the chosen probability exact in its REAL column), "
                "policy pmf only where it differs, eligible as a bitmask over the arm set (NULL: all), the arm set "
                "(offer set id, formats, time slots, context and numeric key names) stored once in arm_sets and "
                "referenced by a 63-bit integer key, the context's values only, the request fingerprint as 19 bytes, "
                "removal counts as 5 integers")
    report.note("the policy pmf differs from the served one wherever novelty exploration has beta > 0; it is stored as "
                "the mixture's parameters (11 B, plus a 16 B bitmask unless every arm is outside the history), which "
                "give it back from the stored served pmf within 1e-6 (checked when the row is written; else float32); "
                "SQLite packs whole rows into pages: a new log has 16 KB pages (about 20 rows of ~780 B each), "
                "SQLite's default 4 KB page holds 5")
    report.note("PostgreSQL compresses rows over ~2 KB (TOAST, pglz): the old format's rows are, the compact ones are "
                "not; these are the bootstrap policy's near-uniform pmfs, which compress well, so the old format's "
                "PostgreSQL figure is likely below what a trained model's pmfs would give (not measured here)")
    report.goal("log_bytes_per_decision", f"1024 B / bytes on disk per logged {N_ARMS}-arm decision, compact SQLite "
                "log, tables + indexes (>= 1 means at most 1 KB)", 1024.0 / sizes["sqlite compact"], 1.0)
    report.write(args.json)


def big_offer_sets(root: Path, count: int) -> tuple[float, float, float]:
    """Decide ``count`` requests with one 2,000-offer set, then ``count`` with a distinct set each: the bytes of
    one offer_sets row, of one decision row, and of that row in the old format."""
    import sqlite3
    people = customers(2 * count, seed=16)
    def request(i: int, distinct: bool) -> pb.DecideRequest:
        r = pb.DecideRequest(user_id=people[i].user_id)
        r.context.update(people[i].context)
        for k in range(BIG_OFFERS):
            offer = r.offers.add(id=f"offer-{k}")
            offer.features.update({"category": f"cat-{k % 6}", "discount_type": ("dollar", "percent")[k % 2],
                                   "batch": f"b{i if distinct else 0}"})
        r.formats.append("sms")
        r.time_slots.append("morning")
        return r
    url, old_url = f"sqlite:///{root / 'big.db'}", f"sqlite:///{root / 'big_old.db'}"
    ids = decide(url, root / "serve-big", [request(i, False) for i in range(count)]
                 + [request(count + i, True) for i in range(count)], batch=1)
    rewrite_old(url, old_url, ids)
    conn = sqlite3.connect(root / "big.db")
    try:
        offer_set = conn.execute("SELECT avg(length(id) + length(offers)) FROM offer_sets").fetchone()[0]
        sets = conn.execute("SELECT count(*) FROM offer_sets").fetchone()[0]
    finally:
        conn.close()
    if sets != count + 1:
        raise RuntimeError(f"expected {count + 1} distinct offer sets, found {sets}")
    rows = [sqlite_bytes(root / name)[1]["decisions"] / len(ids) for name in ("big.db", "big_old.db")]
    return offer_set, rows[0], rows[1]


if __name__ == "__main__":
    main()
