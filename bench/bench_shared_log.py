"""The shared decision log on PostgreSQL: replica throughput, the learner's rate, model freshness.

    python bench/bench_shared_log.py [--quick | --tiny] [--json PATH]

Everything runs as an operator runs it: a throwaway PostgreSQL cluster (initdb/pg_ctl, fsync on,
synchronous_commit on), one MLflow store shared through ``MLFLOW_TRACKING_URI``, and ``offerbandit
serve --log-url postgresql://...`` / ``offerbandit learn`` subprocesses.

(a) decisions/s of one replica, then of two replica processes on the same log (DecideBatch of 16
    decisions over 128 joint arms, the same client both times: 4 channels with 4 calls in flight each,
    spread over the replicas; every decision committed to PostgreSQL before its answer). The client, both servers and PostgreSQL share the machine's cores.
(b) learner events/s: a log holding N final events (decided and rewarded through a replica), then
    ``offerbandit learn`` started: events learned per second from its ready line until every one of
    them has its ``learn_seq``.
(c) freshness with the default settings (``checkpoint_every_seconds = 10`` for ``learn``,
    ``registry_poll_seconds = 5`` for replicas): seconds from a ``Reward`` until the replica serves a
    version whose checkpoint includes that event (its lineage's ``learn_seq`` reaches the event's own).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import OUT_DIR, Report, ServeProcess, customers, decide_request, parse_flags, run_load  # noqa: E402
from decision_log import RewardDefaults, open_log  # noqa: E402
from offers.v1 import decision_pb2 as pb  # noqa: E402
from offers.v1 import decision_pb2_grpc as pb_grpc  # noqa: E402
from policy_registry import PolicyRegistry, RegistryConfig  # noqa: E402
from tests.fixtures_mlflow import write_template_store  # noqa: E402
from tests.postgres import PostgresCluster, find_postgres_bin  # noqa: E402

N_ARMS = 128
BATCH = 16
SIZES = {  # mode -> (DecideBatch calls per replica run, final events for the learner, freshness probes)
    "full": (300, 3000, 5),
    "quick": (120, 1000, 3),
    "tiny": (8, 40, 1),
}
KEY = "bench-shared-log-key-0123456789"


def batches(count: int, seed: int) -> list[pb.DecideBatchRequest]:
    people = customers(count * BATCH, seed=seed)
    return [pb.DecideBatchRequest(requests=[decide_request(c, N_ARMS, ranking_limit=1) for c in people[i:i + BATCH]])
            for i in range(0, len(people), BATCH)]


def replica_rate(addresses: list[str], requests: list[pb.DecideBatchRequest], channels: int = 4,
                 in_flight: int = 4) -> tuple[float, int]:
    """Decisions/s over all ``addresses``: the same client concurrency whatever the number of replicas
    (``channels`` channels, spread evenly over the addresses, each with ``in_flight`` calls outstanding)."""
    channels = [grpc.insecure_channel(addresses[i % len(addresses)]) for i in range(channels)]
    calls = [pb_grpc.DecisionServiceStub(c).DecideBatch for c in channels]
    for call in calls:  # connect and warm up every channel
        call(requests[0], timeout=60)
    parts = [requests[i::len(calls)] for i in range(len(calls))]
    results: list[tuple[float, list[float], int]] = [None] * len(calls)  # type: ignore[list-item]

    def drive(i: int) -> None:
        results[i] = run_load(calls[i], parts[i], in_flight)

    start = time.perf_counter()
    threads = [threading.Thread(target=drive, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    for channel in channels:
        channel.close()
    failed = sum(r[2] for r in results)
    decided = sum(len(p) for p in parts) * BATCH - failed * BATCH
    return decided / wall, failed


def bench_replicas(report: Report, work: Path, url: str, env: dict, n_calls: int) -> None:
    config = "[mlflow]\nstart_timeout_seconds = 0\n"
    rows = []
    with ServeProcess(work / "r1", config, env=env, extra=("--log-url", url), registry_wait_s=0) as one:
        single, failed_one = replica_rate([one.address], batches(n_calls, seed=1))
    rows.append(["1 replica", round(single), failed_one])
    with ServeProcess(work / "r2a", config, env=env, extra=("--log-url", url), registry_wait_s=0) as a, \
            ServeProcess(work / "r2b", config, env=env, extra=("--log-url", url), registry_wait_s=0) as b:
        double, failed_two = replica_rate([a.address, b.address], batches(2 * n_calls, seed=2))
    rows.append(["2 replica processes, one log", round(double), failed_two])
    report.table("(a) Replicas on one PostgreSQL log: DecideBatch of 16 over 128 joint arms, every decision "
                 "committed before its answer; the same client both times (4 channels x 4 calls in flight)",
                 ["servers", "decisions/s", "failed calls"], rows)
    report.goal("two_replicas_vs_one", "decisions/s of two serve processes on one PostgreSQL log / one serve "
                "process on it (same client, same run; client, servers and PostgreSQL share 2 cores)",
                double / single, 1.6)


def fill_final_events(address: str, count: int) -> None:
    """``count`` decisions, each rewarded at once (aggregation 'first': final with its first reward)."""
    channel = grpc.insecure_channel(address)
    stub = pb_grpc.DecisionServiceStub(channel)
    for request in batches(max(1, count // BATCH), seed=3):
        answer = stub.DecideBatch(request, timeout=60)
        for decision in answer.decisions:
            stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=60)
    channel.close()


def bench_learner(report: Report, work: Path, url: str, env: dict, n_events: int) -> None:
    with ServeProcess(work / "fill", "[mlflow]\nstart_timeout_seconds = 0\n", env=env, extra=("--log-url", url),
                      registry_wait_s=0) as replica:
        fill_final_events(replica.address, n_events)
    total = (n_events // BATCH) * BATCH
    with ServeProcess(work / "learner", "", env=env, command=("learn",), extra=("--log-url", url),
                      ready=r"learning from ", registry_wait_s=0) as learner, open_log(url) as log:
        started = time.perf_counter()
        while log.max_learn_seq() < total and learner.proc.poll() is None:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    report.table("(b) The learner: final events learned per second (offerbandit learn, from its ready line)",
                 ["final events", "seconds", "events/s"], [[total, round(elapsed, 2), round(total / elapsed, 1)]])


def learn_seq_of(log, seq: int, timeout: float = 120.0) -> int:
    """The learn_seq the learner gave the decision ``seq`` (waits until it has learned it)."""
    deadline = time.monotonic() + timeout
    after = 0
    while time.monotonic() < deadline:
        for item in log.learned_events_after(RewardDefaults(), "default", after):
            if item.seq == seq:
                return item.learn_seq
            after = item.learn_seq
        time.sleep(0.05)
    raise RuntimeError(f"decision {seq} was not learned within {timeout:.0f} s")


def served_learn_seq(registry: PolicyRegistry, version: str, cache: dict[str, int]) -> int:
    if version not in cache:
        lineage = registry.load("default", version).lineage if version.isdigit() else None
        cache[version] = (lineage.learn_seq or 0) if lineage is not None else 0
    return cache[version]


def bench_freshness(report: Report, work: Path, url: str, env: dict, tracking_uri: str, probes: int) -> None:
    registry = PolicyRegistry(RegistryConfig(tracking_uri=tracking_uri, artifact_root=str(work / "artifacts")))
    seen: dict[str, int] = {}
    rows = []
    with ServeProcess(work / "learn-fresh", "", env=env, command=("learn",), extra=("--log-url", url),
                      ready=r"learning from ", registry_wait_s=0), \
            ServeProcess(work / "fresh", "", env=env, extra=("--log-url", url), registry_wait_s=0) as replica, \
            open_log(url) as log:
        channel = grpc.insecure_channel(replica.address)
        stub = pb_grpc.DecisionServiceStub(channel)
        for probe in range(probes):
            decision = stub.Decide(decide_request(customers(1, seed=100 + probe)[0], N_ARMS, 1), timeout=60)
            rewarded = time.perf_counter()
            stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=60)
            seq = log.find_decision(decision.event_id).seq
            needed = learn_seq_of(log, seq)
            learned_s = time.perf_counter() - rewarded
            while True:
                version = stub.Decide(decide_request(customers(1, seed=7)[0], N_ARMS, 1), timeout=60).policy_version
                if served_learn_seq(registry, version, seen) >= needed:
                    break
                time.sleep(0.25)
            rows.append([probe + 1, round(learned_s, 2), round(time.perf_counter() - rewarded, 2), version])
        channel.close()
    report.table("(c) Freshness with default settings: seconds from a Reward to the replica serving a model "
                 "that learned it", ["probe", "learned after s", "served after s", "version"], rows)
    worst = max(row[2] for row in rows)
    report.goal("freshness_within_30s", "30 s / the slowest probe's seconds from Reward to a replica serving a "
                "checkpoint that includes it (>= 1 means within 30 s; default settings)", 30.0 / worst, 1.0)


def main() -> None:
    args = parse_flags(__doc__.splitlines()[0])
    report = Report("bench_shared_log", args.mode)
    n_calls, n_events, probes = SIZES[args.mode]
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        sys.exit("bench_shared_log: PostgreSQL is not installed (no initdb); apt-get install postgresql")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="shared-log-", dir=OUT_DIR))
    cluster = PostgresCluster(bin_dir)
    try:
        store = write_template_store(work / "mlflow" / "mlflow.db")
        tracking_uri = f"sqlite:///{store}"
        env = {"MLFLOW_TRACKING_URI": tracking_uri, "OFFERBANDIT_USER_HASH_KEY": KEY}
        bench_replicas(report, work, cluster.new_database(), env, n_calls)
        bench_learner(report, work, cluster.new_database(), env, n_events)
        bench_freshness(report, work, cluster.new_database(), env, tracking_uri, probes)
    finally:
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)
    report.write(args.json)


if __name__ == "__main__":
    main()
