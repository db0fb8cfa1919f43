"""AsyncClient: every method as a coroutine against a real in-process server."""
from __future__ import annotations

import asyncio
import sqlite3

import pytest

from offerbandit import AsyncClient, RpcInvalidArgument, RpcNotFound
from offerbandit.client import ActivateAck, Decision, DecisionRecord, RewardAck
from tests.repeats import assert_repeat_of

OFFERS = [("o1", {"category": "travel"}), ("o2", {"category": "food"})]


def _count(data_dir) -> int:
    con = sqlite3.connect(data_dir / "decisions.db")
    try:
        return con.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    finally:
        con.close()


def test_every_method_as_a_coroutine(start_server):
    served = start_server("[limits]\nmax_batch = 2\n")

    async def main() -> None:
        async with AsyncClient(served.address, max_batch=2) as client:
            decision = await client.decide("alice", context={"segment": "young"}, offers=OFFERS, deferred=True)
            assert isinstance(decision, Decision) and decision.event_id
            assert_repeat_of(await client.decide("alice", context={"segment": "young"}, offers=OFFERS,
                                                 deferred=True, event_id=decision.event_id), decision)
            assert await client.activate(decision.event_id) == ActivateAck(True, False)
            assert await client.reward(decision.event_id, 1.0) == RewardAck(True, False, False)
            batch = await client.decide_batch([{"user_id": f"u{i}", "offers": OFFERS} for i in range(5)])
            assert len(batch) == 5 and len({d.event_id for d in batch}) == 5  # three calls of <= 2
            many = await asyncio.gather(*(client.decide(f"c{i}", offers=OFFERS) for i in range(20)))
            assert len({d.event_id for d in many}) == 20
            record = await client.get_decision(decision.event_id)
            assert isinstance(record, DecisionRecord) and record.decision == decision and record.removed == ()
            assert (record.rewarded, record.reward) == (True, 1.0)
            with pytest.raises(RpcNotFound):
                await client.get_decision("no-such-event")
            with pytest.raises(RpcNotFound):
                await client.reward("no-such-event", 1.0)
            with pytest.raises(RpcInvalidArgument, match="numeric"):
                await client.decide("bob", numeric={"x": float("nan")})
            with pytest.raises(RpcInvalidArgument, match=r"requests\[3\]"):
                await client.decide_batch([{"user_id": f"v{i}", "offers": OFFERS} for i in range(3)] + [{"user_id": ""}])

    asyncio.run(main())
    assert _count(served.data_dir) == 1 + 5 + 20 + 2  # the failing batch's first call (2 items) was committed
