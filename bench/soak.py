"""Soak: a real ``offerbandit serve`` under steady decide + reward load; its RSS over time.

    python bench/soak.py [--rate 300] [--seconds 300] [--users 50000] [--arms 96] [--json PATH]

Each operation is one ``Decide`` (a fresh event id, a customer drawn from ``--users``, the candidates
sent inline: ``--arms`` joint arms) followed by one ``Reward``; every 20th Decide repeats an earlier
event id (a client retry). The client paces itself to ``--rate`` operations per second from a few
threads (it reports what it reached). The server's RSS (``/proc/<pid>/status``) is sampled every
``--sample-seconds``. Printed: the samples as JSON, then one line with the growth after warm-up
(the first minute, or the first third of a shorter run). Goal (issue 14): growth <= 10% over 300 s at
300/s. The server runs with ``[learning] history_max_users = --history-users`` so the per-user
store reaches its bound (and loads evicted customers from the log) within the run.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Customer, ServeProcess, decide_request  # noqa: E402
from offers.v1 import decision_pb2 as pb  # noqa: E402
from offers.v1 import decision_pb2_grpc as pb_grpc  # noqa: E402

SEGMENTS = ("commuter", "family", "student", "retiree", "traveller", "gamer")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Load:
    """``threads`` workers that together start ``rate`` decide+reward operations per second."""

    def __init__(self, address: str, rate: float, users: int, arms: int, threads: int) -> None:
        self.address, self.rate, self.users, self.arms, self.threads = address, rate, users, arms, threads
        self.done = 0
        self.errors: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for w in range(self.threads):
            thread = threading.Thread(target=self._run, args=(w,), daemon=True)
            thread.start()
            self._workers.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(30)

    def _run(self, worker: int) -> None:
        channel = grpc.insecure_channel(self.address)
        stub = pb_grpc.DecisionServiceStub(channel)
        rng = random.Random(worker)
        period = self.threads / self.rate
        next_at = time.perf_counter()
        recent: list[pb.DecideRequest] = []
        n = 0
        while not self._stop.is_set():
            next_at += period
            n += 1
            if n % 20 == 0 and recent:
                request = rng.choice(recent)  # a retry of an earlier call: same id, same request
            else:
                user = rng.randrange(self.users)
                customer = Customer(f"user-{user}", {"segment": SEGMENTS[user % len(SEGMENTS)],
                                                     "weekday": f"d{rng.randrange(7)}"},
                                    {"tenure_months": float(user % 60)})
                request = decide_request(customer, self.arms)
                request.event_id = uuid.uuid4().hex
                recent = (recent + [request])[-50:]
            try:
                decision = stub.Decide(request, timeout=10)
                stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=float(rng.random() < 0.2),
                                             reward_id=f"r-{decision.event_id}"), timeout=10)
                with self._lock:
                    self.done += 1
            except grpc.RpcError as exc:
                with self._lock:
                    self.errors[exc.code().name] = self.errors.get(exc.code().name, 0) + 1
            pause = next_at - time.perf_counter()
            if pause > 0:
                self._stop.wait(pause)
            elif pause < -1.0:
                next_at = time.perf_counter()  # behind by a second: do not burst to catch up
        channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0, help="decide+reward operations per second")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--users", type=int, default=50_000, help="customers drawn from")
    parser.add_argument("--history-users", type=int, default=20_000, help="[learning] history_max_users")
    parser.add_argument("--arms", type=int, default=96, help="joint arms sent per Decide")
    parser.add_argument("--threads", type=int, default=12)
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args()
    config = f"[learning]\nhistory_max_users = {args.history_users}\n"
    with tempfile.TemporaryDirectory(prefix="offerbandit-soak-") as folder, \
            ServeProcess(Path(folder) / "data", config) as server:
        pid = server.proc.pid
        load = Load(server.address, args.rate, args.users, args.arms, args.threads)
        started = time.perf_counter()
        samples = [{"t": 0.0, "rss_mb": round(rss_mb(pid), 1), "ops": 0}]
        load.start()
        while (elapsed := time.perf_counter() - started) < args.seconds:
            time.sleep(min(args.sample_seconds, max(args.seconds - elapsed, 0.01)))
            samples.append({"t": round(time.perf_counter() - started, 1), "rss_mb": round(rss_mb(pid), 1),
                            "ops": load.done})
        load.stop()
        alive = server.proc.poll() is None
    warm = min(60.0, args.seconds / 3)
    base = next(s for s in samples if s["t"] >= warm)
    end = samples[-1]
    growth = (end["rss_mb"] - base["rss_mb"]) / base["rss_mb"] * 100
    report = {"rate_target": args.rate, "rate_reached": round(end["ops"] / end["t"], 1), "seconds": end["t"],
              "users": args.users, "history_users": args.history_users, "arms": args.arms,
              "errors": load.errors, "server_alive": alive, "warm_up_s": warm, "rss_start_mb": samples[0]["rss_mb"],
              "rss_after_warm_up_mb": base["rss_mb"], "rss_end_mb": end["rss_mb"], "rss_peak_mb": max(
                  s["rss_mb"] for s in samples), "growth_after_warm_up_pct": round(growth, 1), "samples": samples}
    print(json.dumps(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"soak: {report['rate_reached']}/s of {args.rate:g}/s for {end['t']:.0f}s; RSS {samples[0]['rss_mb']:.0f} -> "
          f"{base['rss_mb']:.0f} MB at {warm:.0f}s -> {end['rss_mb']:.0f} MB at the end "
          f"({growth:+.1f}% after warm-up; goal <= 10%); errors {load.errors or 'none'}")


if __name__ == "__main__":
    main()
