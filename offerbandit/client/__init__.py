"""The Python client of the offerbandit decision service (``offers.v1.DecisionService``).

    from offerbandit import Client

    with Client("127.0.0.1:50051", token="...") as client:
        decision = client.decide("u42", context={"segment": "commuter"})
        client.reward(decision.event_id, 1.0)

``Client`` blocks, ``AsyncClient`` has the same methods as coroutines. Results are the frozen
dataclasses below (the proto's field names); failures are ``offerbandit.ClientError`` and its
``Rpc*`` subclasses (see ``offerbandit.errors``). Only gRPC, protobuf and the generated ``offers.v1``
code are loaded: no server, model or numpy.
"""
from __future__ import annotations

from offerbandit.client.aio import AsyncClient
from offerbandit.client.ids import new_id
from offerbandit.client.results import ActivateAck, Arm, Decision, DecisionRecord, RemovedArm, RewardAck
from offerbandit.client.sync import Client

__all__ = ["ActivateAck", "Arm", "AsyncClient", "Client", "Decision", "DecisionRecord", "RemovedArm", "RewardAck",
           "new_id"]
