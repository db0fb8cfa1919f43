"""Where a served decision's time goes, in-process (no gRPC, no client): the servicer's path timed as a whole
and step by step over the same requests, and a profile of it (pyinstrument, self time by function).

Used by bench_service.py; the profile is the short flame summary issue 15 asks for.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from bench.common import Report, arm_set_of, customers, decide_request
from offers.v1 import decision_pb2 as pb
from policies.factory import make_policy
from policies.types import ArmSet, DecisionContext
from service import validation
from service.answers import AnswerEncoder
from service.config import DEFAULT_POLICY_PARAMS, ServiceConfig, parse_config
from service.engine import DecisionEngine, ranking_of

PROFILE_ROWS = 14


def _per_decision(function: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    function()
    return (time.perf_counter() - start) / count * 1e6


def _self_times(frame, totals: dict[str, float]) -> None:  # noqa: ANN001 - pyinstrument's Frame
    """Self time per real function (pyinstrument keeps it in synthetic ``[self]`` children)."""
    if not frame.is_synthetic:
        name = f"{frame.function} ({Path(frame.file_path or '?').name}:{frame.line_no})"
        totals[name] += frame.total_self_time
    for child in frame.children:
        _self_times(child, totals)


def _server_path(config: ServiceConfig, engine: DecisionEngine) -> Callable[[list[pb.DecideBatchRequest]], list]:
    """The servicer's work for DecideBatch calls, in-process: validate, decide (group commit included), encode."""
    encoder = AnswerEncoder(config.server.candidate_cache_bytes)
    known = validation.ValidatedOffers(config.server.candidate_cache_bytes)

    def serve(calls: list[pb.DecideBatchRequest]) -> list:
        outcomes = []
        for call in calls:
            decided = engine.decide(validation.batch_inputs(call, config.limits, config.privacy, known), batch=True)
            encoder.batch(decided)
            outcomes.extend(decided)
        return outcomes

    return serve


def _returning_customers(workdir: Path, calls: list[pb.DecideBatchRequest], personal: bool) -> float:
    """us/decision of the whole path for customers with a contact each in their history (the calls served
    once before, untimed), with ``personal_features`` on or off (on: every arm carries the customer's counts,
    parsed afresh for VW)."""
    config = parse_config(f"[campaigns.default]\npersonal_features = {'true' if personal else 'false'}\n")
    engine = DecisionEngine(config, workdir / f"engine-personal-{personal}")
    try:
        serve = _server_path(config, engine)
        serve(calls)
        return _per_decision(lambda: serve(calls), sum(len(c.requests) for c in calls))
    finally:
        engine.close()


def engine_breakdown(report: Report, workdir: Path, n_decisions: int, n_arms: int, batch: int) -> None:
    config = ServiceConfig()
    engine = DecisionEngine(config, workdir / "engine")
    encoder = AnswerEncoder(config.server.candidate_cache_bytes)
    known = validation.ValidatedOffers(config.server.candidate_cache_bytes)
    try:
        requests = [decide_request(c, n_arms) for c in customers(2 * n_decisions + batch, seed=11)]
        batches = [pb.DecideBatchRequest(requests=requests[i:i + batch]) for i in range(0, len(requests), batch)]
        serve = _server_path(config, engine)
        serve(batches[:1])  # first sight of the arms
        timed, profiled = batches[1:1 + len(batches) // 2], batches[1 + len(batches) // 2:]
        outcomes: list = []
        total = _per_decision(lambda: outcomes.extend(serve(timed)), sum(len(b.requests) for b in timed))
        inputs = [validation.decide_input(r, config.limits, config.privacy, known) for b in timed for r in b.requests]
        arm_set = arm_set_of(n_arms)
        policy = make_policy("vw", **dict(DEFAULT_POLICY_PARAMS))
        contexts = [DecisionContext(engine.keys.user_key(i.user_id), dict(i.context), dict(i.numeric)) for i in inputs]
        policy.pmf(contexts[0], arm_set)
        pmfs = [policy.pmf(c, arm_set) for c in contexts]
        steps = [
            (f"the whole path: validate + engine.decide + encode, DecideBatch of {batch} (group commit included)",
             total),
            ("  validate the wire request (offer lists remembered by their bytes)",
             _per_decision(lambda: [validation.decide_input(r, config.limits, config.privacy, known)
                                    for b in timed for r in b.requests], len(inputs))),
            ("  ArmSet.product of the request's candidates (NOT on the path: what the candidate cache, keyed by "
             "the offers' wire digest, saves)", _per_decision(
                lambda: [ArmSet.product(i.offers, i.formats, i.time_slots) for i in inputs], len(inputs))),
            ("  the candidate cache's lookup instead (on the path)", _per_decision(
                lambda: [engine.runtime(i.campaign).candidates(i.offers, i.formats, i.time_slots, i.offers_key)
                         for i in inputs], len(inputs))),
            ("  VW pmf (VWPolicy.pmf, cached arm examples)",
             _per_decision(lambda: [policy.pmf(c, arm_set) for c in contexts], len(contexts))),
            ("  ranking_of (all arms, sorted)", _per_decision(lambda: [ranking_of(arm_set, p) for p in pmfs],
                                                             len(pmfs))),
            ("  Decision bytes with full ranking (AnswerEncoder)",
             _per_decision(lambda: [encoder.decision(o) for o in outcomes], len(outcomes))),
        ]
        rows = _profile(lambda: serve(profiled), sum(len(b.requests) for b in profiled))
    finally:
        engine.close()
    for personal in (False, True):  # measured, not a goal: the request-path cost of issue 16's switch
        steps.append((f"the whole path, returning customers (a contact each), personal_features = "
                      f"{str(personal).lower()}", _returning_customers(workdir, timed, personal)))
    report.table(f"Where a served decision's time goes (in-process, {n_arms} arms, no gRPC)",
                 ["step", "us/decision"], [[name, value] for name, value in steps])
    if rows:
        report.table(f"Profile of the same path (pyinstrument, {len(profiled)} DecideBatch calls): self time by "
                     f"function, top {PROFILE_ROWS}", ["function", "us/decision", "share"], rows)


def _profile(run: Callable[[], object], decisions: int) -> list[list[object]]:
    try:
        from pyinstrument import Profiler
    except ImportError:  # a dev install has it; without it the table is left out
        return []
    profiler = Profiler(interval=0.0002)
    profiler.start()
    run()
    profiler.stop()
    totals: dict[str, float] = defaultdict(float)
    root = profiler.last_session.root_frame() if profiler.last_session else None
    if root is None:
        return []
    _self_times(root, totals)
    whole = sum(totals.values()) or 1.0
    top = sorted(totals.items(), key=lambda item: -item[1])[:PROFILE_ROWS]
    return [[name, seconds / decisions * 1e6, f"{seconds / whole:.0%}"] for name, seconds in top]
