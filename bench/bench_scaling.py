"""How costs grow with the number of joint arms and with the size of the decision log.

    python bench/bench_scaling.py [--quick | --tiny] [--json PATH] [--with-1m]

Arms (64 -> 128 -> 256 -> 512 -> 1024; offers x 4 formats x 4 slots sent as candidates):
  in-process VW pmf us/decision (the server's VW parameters), and through gRPC against
  ``offerbandit serve --port 0`` (DecideBatch of 16 with 2 in flight: us/decision; Decide one at a
  time: p50 latency; full ranking returned).

Log size (10k -> 100k rows of 128-arm decisions, and 1M with ``--with-1m``: about 3 minutes and
  4.3 GB of disk on a 2-core machine, so off by default): at each size,
  the log writer's insert throughput for the next rows (8 threads submitting one-row ops, group
  commit, WAL, synchronous=FULL) and the latency of joining a reward onto a random logged decision
  (``reward_ops.record_reward`` through the writer: lookup by event id, insert, update, commit).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (OUT_DIR, Report, ServeProcess, arm_set_of, customers, decide_request, feed_writer,  # noqa: E402
                          decision_context, decision_rows, parse_flags, percentiles_ms)
from offers.v1 import decision_pb2 as pb  # noqa: E402
from offers.v1 import decision_pb2_grpc as pb_grpc  # noqa: E402
from policies.factory import make_policy  # noqa: E402
from decision_log.sqlite import reward_ops  # noqa: E402
from service.config import DEFAULT_POLICY_PARAMS  # noqa: E402
from decision_log.sqlite.write_ops import insert_decisions  # noqa: E402
from decision_log.sqlite.writer import LogWriter  # noqa: E402

ARM_COUNTS = (64, 128, 256, 512, 1024)
GRPC_BATCH = 16
SIZES = {  # mode -> (decisions per arm count in-process, DecideBatch calls per arm count, log sizes, probe rows)
    "full": (400, 24, (10_000, 100_000), 5000),
    "quick": (150, 8, (10_000, 100_000), 3000),
    "tiny": (20, 2, (1_000, 3_000), 300),
}


# --- arms ---------------------------------------------------------------------------------------

def in_process_us(n_arms: int, n_decisions: int) -> float:
    policy = make_policy("vw", **dict(DEFAULT_POLICY_PARAMS))
    arm_set = arm_set_of(n_arms)
    contexts = [decision_context(c) for c in customers(n_decisions, seed=n_arms)]
    policy.pmf(contexts[0], arm_set)  # first sight of the arms
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for context in contexts:
            policy.pmf(context, arm_set)
        best = min(best, (time.perf_counter() - start) / len(contexts))
    return best * 1e6


def served_costs(stub: pb_grpc.DecisionServiceStub, n_arms: int, n_batches: int) -> tuple[float, float, float]:
    """(us/decision with DecideBatch of 16, 2 in flight; p50 and p99 ms of single Decide calls, one at a time)."""
    people = customers(n_batches * GRPC_BATCH + 40, seed=1000 + n_arms)
    stub.DecideBatch(pb.DecideBatchRequest(requests=[decide_request(c, n_arms) for c in people[:8]]), timeout=120)
    batches = [pb.DecideBatchRequest(requests=[decide_request(c, n_arms) for c in people[i:i + GRPC_BATCH]])
               for i in range(40, len(people), GRPC_BATCH)]
    slots = threading.Semaphore(2)
    futures = []
    start = time.perf_counter()
    for batch in batches:
        slots.acquire()
        future = stub.DecideBatch.future(batch, timeout=120)
        future.add_done_callback(lambda f: slots.release())
        futures.append(future)
    for future in futures:
        future.result()
    per_decision = (time.perf_counter() - start) / (len(batches) * GRPC_BATCH) * 1e6
    latencies = []
    for customer in people[8:40]:
        request = decide_request(customer, n_arms)
        sent = time.perf_counter()
        stub.Decide(request, timeout=60)
        latencies.append(time.perf_counter() - sent)
    p50, p99 = percentiles_ms(latencies)
    return per_decision, p50, p99


def bench_arms(report: Report, workdir: Path, n_decisions: int, n_batches: int, registry_wait_s: float) -> None:
    rows = []
    with ServeProcess(workdir / "serve", registry_wait_s=registry_wait_s) as server:
        channel = grpc.insecure_channel(server.address, options=[("grpc.max_receive_message_length", 64 << 20)])
        stub = pb_grpc.DecisionServiceStub(channel)
        for n_arms in ARM_COUNTS:
            served, p50, p99 = served_costs(stub, n_arms, n_batches)
            local = in_process_us(n_arms, n_decisions)
            rows.append([n_arms, local, served, served / local, p50, p99])
        channel.close()
    base_local, base_served = rows[0][1], rows[0][2]
    report.table("Cost per decision vs joint arms (offers x 4 formats x 4 slots)",
                 ["arms", "in-process VW pmf us", "gRPC DecideBatch us/decision", "gRPC / in-process",
                  "Decide p50 ms", "Decide p99 ms"], rows)
    report.table("Growth relative to 64 arms (16x the arms at 1024)",
                 ["arms", "in-process x", "gRPC x"],
                 [[r[0], r[1] / base_local, r[2] / base_served] for r in rows])


# --- log size ----------------------------------------------------------------------------------

def fill(writer: LogWriter, count: int, seed: int, chunk: int = 512) -> list[str]:
    """Append ``count`` rows in 512-row ops, generated chunk by chunk; returns a sample of event ids."""
    sample: list[str] = []
    pending = []
    for i in range(0, count, chunk):
        rows = decision_rows(min(chunk, count - i), seed=seed + i)
        sample.append(rows[0].event_id)
        pending.append(writer.submit(insert_decisions(rows)))
        if len(pending) > 8:
            pending.pop(0).result()
    for future in pending:
        future.result()
    return sample


def insert_rate(writer: LogWriter, count: int, seed: int, threads: int = 8) -> float:
    rows = decision_rows(count, seed=seed)
    return count / feed_writer(writer, [[row] for row in rows], threads, window=256)


def reward_latencies(writer: LogWriter, event_ids: list[str], count: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    latencies = []
    for i in range(count):
        event_id = event_ids[int(rng.integers(len(event_ids)))]
        op = reward_ops.record_reward(event_id, 1.0, f"bench-{seed}-{i}", time.time(), lambda campaign: "first",
                                      lambda campaign: (0.0, 1.0))
        sent = time.perf_counter()
        writer.write(op)
        latencies.append(time.perf_counter() - sent)
    return latencies


def bench_log_size(report: Report, workdir: Path, sizes: tuple[int, ...], probe: int) -> None:
    writer = LogWriter(workdir / "growing.db")
    event_ids: list[str] = []
    rows, logged = [], 0
    try:
        for size in sizes:
            start = time.perf_counter()
            event_ids += fill(writer, size - logged, seed=logged)
            fill_rate = (size - logged) / (time.perf_counter() - start)
            logged = size
            rate = insert_rate(writer, probe, seed=10_000_000 + size)
            logged += probe
            latencies = reward_latencies(writer, event_ids, max(50, probe // 25), seed=size)
            p50, p99 = percentiles_ms(latencies)
            megabytes = sum(f.stat().st_size for f in workdir.glob("growing.db*")) / 1e6
            rows.append([size, round(megabytes), fill_rate, rate, p50, p99])
            print(f"  log at {size:,} rows done", flush=True)
    finally:
        writer.close()
    report.table("Decision log growth (128-arm rows; WAL, synchronous=FULL, group commit)",
                 ["rows in log", "MB on disk", "bulk fill rows/s (512-row ops)",
                  f"insert rows/s (next {probe:,}, 1-row ops, 8 threads)", "reward join p50 ms",
                  "reward join p99 ms"], rows)


def main() -> None:
    args = parse_flags(__doc__.splitlines()[0],
                       [("--with-1m", {"action": "store_true", "help": "extend the log-size series to 1M rows"})])
    report = Report("bench_scaling", args.mode)
    n_decisions, n_batches, sizes, probe = SIZES[args.mode]
    if args.with_1m:
        sizes = (*sizes, 1_000_000)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-scaling-", dir=OUT_DIR))
    try:
        bench_arms(report, workdir, n_decisions, n_batches, args.registry_wait_s)
        bench_log_size(report, workdir, sizes, probe)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report.write(args.json)


if __name__ == "__main__":
    main()
