"""Benchmark offline_eval.evaluate: all eight estimators + 200 bootstrap resamples.

    python bench/bench_ope.py            # 1M events: dense 20 arms, ragged up to 500 arms, vs OBP
    python bench/bench_ope.py --quick    # 20k events

Prints wall time and peak traced memory (tracemalloc, allocations during the call only) for a
dense log (n x 20) and a ragged log (per-event candidate sets of 2..500 arms). If an Open Bandit
Pipeline interpreter is available (``--obp-python``, default /tmp/obpvenv/bin/python; extra
``--obp-path`` is put on its PYTHONPATH), the same dense arrays are saved with ``np.save`` and OBP's
estimators run on them in a subprocess: time ratio and whether the point estimates are identical.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from offline_eval import (  # noqa: E402
    DirectMethod,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    InverseProbabilityWeighting,
    LoggedFeedback,
    RaggedMatrix,
    ReplayMethod,
    SelfNormalizedDoublyRobust,
    SelfNormalizedInverseProbabilityWeighting,
    SwitchDoublyRobust,
    evaluate,
)

N_BOOTSTRAP = 200
SWITCH_LAMBDA = 5.0
DROS_LAMBDA = 10.0


def estimators() -> list:
    return [
        ReplayMethod(),
        InverseProbabilityWeighting(),
        SelfNormalizedInverseProbabilityWeighting(),
        DirectMethod(),
        DoublyRobust(),
        SelfNormalizedDoublyRobust(),
        SwitchDoublyRobust(SWITCH_LAMBDA),
        DoublyRobustWithShrinkage(DROS_LAMBDA),
    ]


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def dense_log(n: int, n_actions: int, seed: int):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 4))
    theta = rng.normal(size=(4, n_actions))
    q_true = 1.0 / (1.0 + np.exp(-(features @ theta)))
    logging = 0.8 * softmax_rows(features @ rng.normal(size=(4, n_actions))) + 0.2 / n_actions
    target = softmax_rows(4.0 * q_true)
    # Half the events get a deterministic target so that replay has matches.
    greedy = rng.random(n) < 0.5
    target[greedy] = np.eye(n_actions)[q_true[greedy].argmax(axis=1)]
    cumulative = logging.cumsum(axis=1)
    action = np.minimum((cumulative < rng.random(n)[:, None]).sum(axis=1), n_actions - 1)
    rows = np.arange(n)
    reward = (rng.random(n) < q_true[rows, action]).astype(np.float64)
    q_hat = np.clip(q_true + rng.normal(0, 0.1, size=q_true.shape), 0, 1)
    feedback = LoggedFeedback(action, reward, logging[rows, action])
    return feedback, target, q_hat, logging


def ragged_softmax(logits: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    starts = indptr[:-1]
    lengths = np.diff(indptr)
    shifted = np.exp(logits - np.repeat(np.maximum.reduceat(logits, starts), lengths))
    return shifted / np.repeat(np.add.reduceat(shifted, starts), lengths)


def ragged_log(n: int, max_arms: int, seed: int):
    rng = np.random.default_rng(seed)
    lengths = np.minimum(max_arms, 1 + rng.geometric(1.0 / 40.0, size=n)).astype(np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    nnz = int(indptr[-1])
    logging = 0.8 * ragged_softmax(rng.normal(size=nnz), indptr) + 0.2 / np.repeat(lengths, lengths)
    target = ragged_softmax(2.0 * rng.normal(size=nnz), indptr)
    q_true = rng.random(nnz)
    q_hat = np.clip(q_true + rng.normal(0, 0.1, size=nnz), 0, 1)
    cumulative = np.cumsum(logging)
    base = np.concatenate([[0.0], cumulative[indptr[1:-1] - 1]])
    position = np.searchsorted(cumulative, base + rng.random(n) * (cumulative[indptr[1:] - 1] - base))
    position = np.clip(position, indptr[:-1], indptr[1:] - 1)
    action = position - indptr[:-1]
    reward = (rng.random(n) < q_true[position]).astype(np.float64)
    feedback = LoggedFeedback(action, reward, logging[position])
    return (
        feedback,
        RaggedMatrix(indptr, target),
        RaggedMatrix(indptr, q_hat),
        RaggedMatrix(indptr, logging),
    )


def run_ours(feedback, target, q_hat, logging, n_bootstrap: int):
    kwargs = dict(estimators=estimators(), n_bootstrap=n_bootstrap, random_state=0, logging_pmf=logging)
    timings = []
    for _ in range(2):  # the first call also pays for page-faulting fresh buffers
        start = time.perf_counter()
        result = evaluate(feedback, target, q_hat, **kwargs)
        timings.append(time.perf_counter() - start)
    seconds = min(timings)
    tracemalloc.start()
    evaluate(feedback, target, q_hat, **kwargs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak


OBP_SCRIPT = r"""
import json, sys, time
import numpy as np
from obp.ope.estimators import (ReplayMethod, InverseProbabilityWeighting,
    SelfNormalizedInverseProbabilityWeighting, DirectMethod, DoublyRobust,
    SelfNormalizedDoublyRobust, SwitchDoublyRobust, DoublyRobustWithShrinkage)
folder, n_bootstrap, switch_lambda, dros_lambda = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
load = lambda name: np.load(f"{folder}/{name}.npy")
data = dict(action=load("action"), reward=load("reward"), pscore=load("pscore"),
            action_dist=load("target")[:, :, None], estimated_rewards_by_reg_model=load("q_hat")[:, :, None])
estimators = {"replay": ReplayMethod(), "ipw": InverseProbabilityWeighting(),
    "snipw": SelfNormalizedInverseProbabilityWeighting(), "dm": DirectMethod(), "dr": DoublyRobust(),
    "sndr": SelfNormalizedDoublyRobust(), "switch_dr": SwitchDoublyRobust(lambda_=switch_lambda),
    "dr_os": DoublyRobustWithShrinkage(lambda_=dros_lambda)}
values, started = {}, time.perf_counter()
for name, estimator in estimators.items():
    values[name] = float(estimator.estimate_policy_value(**data))
point_seconds = time.perf_counter() - started
started = time.perf_counter()
for name, estimator in estimators.items():
    estimator.estimate_interval(**data, n_bootstrap_samples=n_bootstrap, random_state=0)
interval_seconds = time.perf_counter() - started
print(json.dumps({"values": values, "point_seconds": point_seconds, "interval_seconds": interval_seconds}))
"""


def run_obp(python: str, extra_path: str, feedback, target, q_hat, n_bootstrap: int):
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = extra_path
    probe = subprocess.run([python, "-c", "import obp.ope.estimators"], env=env, capture_output=True)
    if probe.returncode != 0:
        return None, probe.stderr.decode(errors="replace").strip().splitlines()[-1:]
    with tempfile.TemporaryDirectory() as folder:
        for name, array in (("action", feedback.action), ("reward", feedback.reward),
                            ("pscore", feedback.pscore), ("target", target), ("q_hat", q_hat)):
            np.save(f"{folder}/{name}.npy", array)
        started = time.perf_counter()
        done = subprocess.run(
            [python, "-c", OBP_SCRIPT, folder, str(n_bootstrap), str(SWITCH_LAMBDA), str(DROS_LAMBDA)],
            env=env, capture_output=True, text=True, check=False,
        )
        wall = time.perf_counter() - started
    if done.returncode != 0:
        return None, done.stderr.strip().splitlines()[-3:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["wall_seconds"] = wall
    return report, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20k events instead of 1M")
    parser.add_argument("--n-events", type=int, default=None)
    parser.add_argument("--obp-python", default="/tmp/obpvenv/bin/python")
    parser.add_argument("--obp-path", default=os.environ.get("OBP_PYTHONPATH", "/tmp/obpsrc"))
    parser.add_argument("--skip-ragged", action="store_true")
    args = parser.parse_args()
    n = args.n_events or (20_000 if args.quick else 1_000_000)
    mib = 1 << 20

    print(f"== dense: {n} events x 20 arms, 8 estimators, {N_BOOTSTRAP} bootstrap resamples")
    feedback, target, q_hat, logging = dense_log(n, 20, seed=0)
    print(f"   inputs: target/q_hat/logging {3 * target.nbytes / mib:.0f} MiB")
    _, point_only, _ = run_ours(feedback, target, q_hat, logging, n_bootstrap=0)
    ours, seconds, peak = run_ours(feedback, target, q_hat, logging, N_BOOTSTRAP)
    print(f"   ours: {seconds:.2f} s total ({point_only:.2f} s without bootstrap), "
          f"peak traced memory {peak / mib:.0f} MiB")

    if os.path.exists(args.obp_python):
        report, problem = run_obp(args.obp_python, args.obp_path, feedback, target, q_hat, N_BOOTSTRAP)
        if report is None:
            print(f"   OBP not run: {problem}")
        else:
            obp_total = report["point_seconds"] + report["interval_seconds"]
            print(f"   OBP : {obp_total:.2f} s in estimators ({report['point_seconds']:.2f} s point "
                  f"estimates, {report['interval_seconds']:.2f} s intervals); subprocess wall "
                  f"{report['wall_seconds']:.2f} s")
            print(f"   ratio OBP / ours: {obp_total / seconds:.1f}x with intervals, "
                  f"{report['point_seconds'] / point_only:.1f}x point estimates only")
            for name, value in report["values"].items():
                mine = ours[name].value
                same = "identical" if mine == value else f"differs by {abs(mine - value):.2e}"
                print(f"   {name:<10} ours {mine:.12f}  OBP {value:.12f}  {same}")
    else:
        print(f"   OBP not run: {args.obp_python} not found")

    if args.skip_ragged:
        return
    del feedback, target, q_hat, logging, ours
    print(f"== ragged: {n} events, 2..500 candidates each")
    feedback, target, q_hat, logging = ragged_log(n, 500, seed=1)
    lengths = target.row_lengths
    print(f"   candidates per event: mean {lengths.mean():.1f}, max {lengths.max()}, "
          f"total {target.values.shape[0]}; inputs {3 * target.values.nbytes / mib:.0f} MiB "
          f"(dense n x 500 would be {3 * n * 500 * 8 / mib:.0f} MiB)")
    _, point_only, _ = run_ours(feedback, target, q_hat, logging, n_bootstrap=0)
    result, seconds, peak = run_ours(feedback, target, q_hat, logging, N_BOOTSTRAP)
    print(f"   ours: {seconds:.2f} s total ({point_only:.2f} s without bootstrap), "
          f"peak traced memory {peak / mib:.0f} MiB")
    print("   " + result.summary().replace("\n", "\n   "))


if __name__ == "__main__":
    main()
