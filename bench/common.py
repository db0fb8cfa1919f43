"""Shared pieces of the service benchmarks: command-line flags, the machine description, latency
percentiles, a real ``offerbandit serve`` subprocess, candidate requests of a given size, and the
JSON report every script writes (``run_all.py`` renders it into ``bench/README.md``).

Report shape (``--json PATH``)::

    {"script": str, "mode": "full" | "quick" | "tiny", "machine": {...}, "wall_s": float,
     "goals":  [{"name", "definition", "measured", "target", "met"}],
     "tables": [{"title", "columns": [str], "rows": [[...]]}],
     "notes":  [str]}
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "bench" / "out"
OFFERBANDIT = str(Path(sys.executable).parent / "offerbandit")

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from offers.v1 import decision_pb2 as pb  # noqa: E402
from policies.types import ArmSet, DecisionContext, Offer  # noqa: E402
from decision_log import DecisionRow, arm_set_code, pmf32_to_blob  # noqa: E402

FORMATS = ("sms", "email", "push", "in_app")
TIME_SLOTS = ("morning", "lunch", "evening", "night")
SEGMENTS = ("commuter", "family", "student", "retiree", "traveller", "gamer")


# --- flags and the report ----------------------------------------------------------------------

def parse_flags(description: str, extra: Sequence[tuple[str, dict]] = ()) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short run (well under a minute or two)")
    parser.add_argument("--tiny", action="store_true", help="a seconds-long run that only proves the script works")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to this path")
    for name, options in extra:
        parser.add_argument(name, **options)
    args = parser.parse_args()
    args.mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    # Servers wait for their first MLflow registry poll before "listening" (see ServeProcess), except
    # in --tiny runs, which only prove that a script works.
    args.registry_wait_s = 0.0 if args.tiny else 120.0
    return args


@dataclass
class Report:
    script: str
    mode: str
    goals: list[dict] = field(default_factory=list)
    tables: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def goal(self, name: str, definition: str, measured: float, target: float) -> None:
        """A goal of the form ``measured >= target``."""
        met = bool(measured >= target)
        self.goals.append({"name": name, "definition": definition, "measured": round(float(measured), 4),
                           "target": target, "met": met})
        print(f"GOAL {name}: {measured:.3f} (target >= {target}) -> {'met' if met else 'NOT met'}")

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.tables.append({"title": title, "columns": list(columns), "rows": [list(r) for r in rows]})
        print(f"\n{title}")
        widths = [max(len(str(c)), *(len(format_cell(r[i])) for r in rows)) for i, c in enumerate(columns)]
        print("  " + "  ".join(str(c).rjust(w) for c, w in zip(columns, widths)))
        for row in rows:
            print("  " + "  ".join(format_cell(v).rjust(w) for v, w in zip(row, widths)))

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"note: {text}")

    def write(self, path: Path | None) -> dict:
        payload = {"script": self.script, "mode": self.mode, "machine": machine_info(),
                   "wall_s": round(time.perf_counter() - self.started, 1), "goals": self.goals,
                   "tables": self.tables, "notes": self.notes}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(payload, indent=1), encoding="utf-8")
        return payload


def format_cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def machine_info() -> dict:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "absent"

    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "versions": {name: version(name) for name in ("vowpalwabbit", "grpcio", "protobuf", "numpy", "mlflow")},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def percentiles_ms(seconds: Sequence[float]) -> tuple[float, float]:
    """p50 and p99 of latencies given in seconds, in milliseconds."""
    values = np.asarray(seconds, dtype=np.float64) * 1e3
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


# --- candidate arms and requests ---------------------------------------------------------------

def arm_shape(n_arms: int) -> tuple[int, int, int]:
    """(offers, formats, time slots) with offers x 4 formats x 4 slots = ``n_arms`` (a multiple of 16)."""
    if n_arms % 16 or n_arms < 16:
        raise ValueError(f"n_arms must be a positive multiple of 16, got {n_arms}")
    return n_arms // 16, len(FORMATS), len(TIME_SLOTS)


def offers_of(n_offers: int) -> tuple[Offer, ...]:
    return tuple(Offer(f"offer-{i}", {"category": f"cat-{i % 6}", "discount_type": ("dollar", "percent")[i % 2]})
                 for i in range(n_offers))


def arm_set_of(n_arms: int) -> ArmSet:
    n_offers, _, _ = arm_shape(n_arms)
    return ArmSet.product(offers_of(n_offers), FORMATS, TIME_SLOTS)


@dataclass(frozen=True)
class Customer:
    user_id: str
    context: dict
    numeric: dict


def customers(count: int, seed: int = 0, pool: int = 5000) -> list[Customer]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        user = int(rng.integers(pool))
        out.append(Customer(f"user-{user}", {"segment": SEGMENTS[user % len(SEGMENTS)],
                                             "device": ("ios", "android", "web")[user % 3],
                                             "weekday": f"d{int(rng.integers(7))}"},
                            {"tenure_months": float(user % 60), "spend": float(rng.random() * 100)}))
    return out


def decide_request(customer: Customer, n_arms: int, ranking_limit: int = 0) -> pb.DecideRequest:
    """A DecideRequest that sends its ``n_arms`` joint arms as candidates (offers x formats x slots)."""
    n_offers, _, _ = arm_shape(n_arms)
    request = pb.DecideRequest(user_id=customer.user_id, ranking_limit=ranking_limit)
    request.context.update(customer.context)
    request.numeric.update(customer.numeric)
    for offer in offers_of(n_offers):
        request.offers.add(id=offer.id).features.update(dict(offer.features))
    request.formats.extend(FORMATS)
    request.time_slots.extend(TIME_SLOTS)
    return request


def decision_context(customer: Customer, user_key: str | None = None) -> DecisionContext:
    return DecisionContext(user_key or customer.user_id, dict(customer.context), dict(customer.numeric))


# --- a real server process ---------------------------------------------------------------------

class ServeProcess:
    """``offerbandit serve --port 0`` (or another command: ``command=("learn",)`` with its ``ready``
    line) as a user runs it; ``with`` stops it with SIGTERM.

    The server's MLflow registry link is on (the default); ``registry_wait_s`` sets
    ``[mlflow] start_timeout_seconds`` so the server says "listening" only after its first registry
    poll, and MLflow's import and store migration do not overlap the measurements.
    ``start_seconds`` is the time from launch to the ready line; ``extra`` are more arguments
    (e.g. ``("--log-url", url)``).
    """

    def __init__(self, data_dir: Path, config_toml: str = "", env: dict | None = None, timeout: float = 180,
                 registry_wait_s: float = 120.0, *, command: Sequence[str] = ("serve", "--host", "127.0.0.1",
                                                                              "--port", "0"),
                 extra: Sequence[str] = (), ready: str = r"listening on \S+:(\d+)") -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [OFFERBANDIT, *command, "--data-dir", str(data_dir), *extra]
        if registry_wait_s > 0:
            config_toml += f"\n[mlflow]\nstart_timeout_seconds = {registry_wait_s}\n"
        if config_toml:
            config_path = data_dir / "bench-config.toml"
            config_path.write_text(config_toml, encoding="utf-8")
            cmd += ["--config", str(config_path)]
        self.output: list[str] = []
        launched = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **(env or {})})
        # one thread reads every line from the start: select() on the pipe then readline() would miss a ready
        # line already pulled into the text wrapper's buffer behind an earlier one (the start then timed out)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, args=(lines,), daemon=True).start()
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None and lines.empty():
                    break
                continue
            if line is None:  # the output ended: the process exited
                break
            match = re.search(ready, line)
            if match:
                self.start_seconds = time.perf_counter() - launched
                self.port = int(match.group(1)) if match.groups() else 0
                self.address = f"127.0.0.1:{self.port}"
                return
        self.proc.kill()
        raise RuntimeError(f"offerbandit {command[0]} did not start: " + "".join(self.output)[-2000:])

    def _drain(self, lines: "queue.Queue[str | None]") -> None:
        for line in self.proc.stdout:
            self.output.append(line)
            lines.put(line)
        lines.put(None)

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def __enter__(self) -> "ServeProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- load ----------------------------------------------------------------------------------------

def run_load(call: Callable, requests: Sequence, in_flight: int) -> tuple[float, list[float], int]:
    """Send ``requests`` with up to ``in_flight`` outstanding futures from one thread.
    Returns (wall seconds, per-call latencies in seconds, failed calls)."""
    slots = threading.Semaphore(in_flight)
    latencies: list[float] = []
    failures = [0]
    done = threading.Event()
    remaining = [len(requests)]
    lock = threading.Lock()

    def finished(future: grpc.Future, started: float) -> None:
        elapsed = time.perf_counter() - started
        with lock:
            if future.exception() is not None:
                failures[0] += 1
            else:
                latencies.append(elapsed)
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()
        slots.release()

    start = time.perf_counter()
    for request in requests:
        slots.acquire()
        sent = time.perf_counter()
        call.future(request, timeout=120).add_done_callback(lambda f, sent=sent: finished(f, sent))
    done.wait()
    return time.perf_counter() - start, latencies, failures[0]



# --- decision-log rows -------------------------------------------------------------------------

def decision_rows(count: int, n_arms: int = 128, seed: int = 0) -> list[DecisionRow]:
    """``count`` realistic compact log rows (fresh event ids) of ``n_arms``-arm decisions, all arms eligible,
    the policy pmf differing from the served one (novelty exploration on, as for a new customer)."""
    rng = np.random.default_rng(seed)
    pmf = rng.dirichlet(np.ones(n_arms))
    policy = rng.dirichlet(np.ones(n_arms))
    arm_set_id, arm_set_text = arm_set_code("bench-offers", FORMATS, TIME_SLOTS)
    pmf_blob, policy_blob = pmf32_to_blob(pmf), pmf32_to_blob(policy)
    rows = []
    for i in range(count):
        chosen = int(rng.integers(n_arms))
        rows.append(DecisionRow(
            event_id=uuid.uuid4().hex, campaign="default", decided_at=time.time(), user_key=f"{i % 5000:032x}",
            context_json='{"segment":"family","device":"ios","weekday":"d3"}',
            numeric_json='{"tenure_months":12.0,"spend":40.5}', offer_set_id="bench-offers",
            offer_set_json='[["offer-0",{"category":"cat-0"}]]', arm_set_id=arm_set_id, arm_set_text=arm_set_text,
            eligible=None, pmf=pmf_blob, policy_pmf=policy_blob, chosen_index=chosen,
            offer_id=f"offer-{chosen // 16}", format="sms", time_slot="morning", probability=float(pmf[chosen]),
            policy_version="bootstrap", exploration="explore", beta=0.1, deferred=False,
            learn_due_at=time.time() + 3600, baseline_json=None, no_contact_reason="", removed=""))
    return rows


def feed_writer(writer, ops: Sequence[Sequence], threads: int, window: int) -> float:
    """Submit insert ops (each a sequence of DecisionRow) from ``threads`` threads, each keeping up to
    ``window`` unacknowledged; returns the seconds until every op was committed."""
    from decision_log.sqlite.write_ops import insert_decisions

    def submit(part: Sequence[Sequence]) -> None:
        pending = []
        for op_rows in part:
            pending.append(writer.submit(insert_decisions(op_rows)))
            if len(pending) >= window:
                pending.pop(0).result()
        for future in pending:
            future.result()

    workers = [threading.Thread(target=submit, args=(ops[i::threads],)) for i in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 where unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
