"""The gRPC servicer: wire messages in, validated inputs to the engine, wire messages out.

Thin on purpose: validation lives in ``validation``, decisions in ``engine``, status mapping in
``status``.
"""
from __future__ import annotations

import time

import grpc
from google.protobuf.message import Message

from offers.v1 import decision_pb2 as pb
from offers.v1 import decision_pb2_grpc as pb_grpc
from service import validation
from offerbandit.errors import Overloaded
from service.answers import AnswerEncoder, to_proto
from service.combiner import DecideCombiner
from service.engine import DecisionEngine, DecisionOutcome
from service.inspection import inspect_decision, record_message
from service.status import abort_with, status_for
from service.metrics import Metrics

__all__ = ["SERVICE", "DecisionServicer", "add_to_server", "to_proto"]

UNKNOWN = "unknown"
SERVICE = "offers.v1.DecisionService"
_OUTCOME_OF_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: "invalid",
    grpc.StatusCode.NOT_FOUND: "not_found",
    grpc.StatusCode.ALREADY_EXISTS: "invalid",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "overloaded",
    grpc.StatusCode.UNAVAILABLE: "unavailable",
}


def _serialize(response: Message | bytes) -> bytes:
    """Answers the servicer encoded itself (`AnswerEncoder`) go out as they are."""
    return response if isinstance(response, bytes) else response.SerializeToString()


def add_to_server(servicer: "DecisionServicer", server: grpc.Server) -> None:
    """Register the decision service like the generated ``add_DecisionServiceServicer_to_server``, with
    serializers that send pre-encoded answers as they are."""
    handlers = {
        "Decide": grpc.unary_unary_rpc_method_handler(
            servicer.Decide, request_deserializer=pb.DecideRequest.FromString, response_serializer=_serialize),
        "DecideBatch": grpc.unary_unary_rpc_method_handler(
            servicer.DecideBatch, request_deserializer=pb.DecideBatchRequest.FromString,
            response_serializer=_serialize),
        "Reward": grpc.unary_unary_rpc_method_handler(
            servicer.Reward, request_deserializer=pb.RewardRequest.FromString,
            response_serializer=pb.RewardAck.SerializeToString),
        "Activate": grpc.unary_unary_rpc_method_handler(
            servicer.Activate, request_deserializer=pb.ActivateRequest.FromString,
            response_serializer=pb.ActivateAck.SerializeToString),
        "GetDecision": grpc.unary_unary_rpc_method_handler(
            servicer.GetDecision, request_deserializer=pb.GetDecisionRequest.FromString,
            response_serializer=pb.DecisionRecord.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)


def _timeout(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None or remaining > 3600 else max(remaining, 0.001)


class DecisionServicer(pb_grpc.DecisionServiceServicer):
    def __init__(self, engine: DecisionEngine, metrics: Metrics) -> None:
        self.engine = engine
        self.encoder = AnswerEncoder(engine.config.server.candidate_cache_bytes)
        self.known_offers = validation.ValidatedOffers(engine.config.server.candidate_cache_bytes)
        self.metrics = metrics
        self.limits = engine.config.limits
        self.privacy = engine.config.privacy
        self.combiner = DecideCombiner(engine, lambda outcome: self._sized(self.encoder.decision(outcome)),
                                       engine.config.server.max_combined_decides, metrics.observe_decide_group)

    def _sized(self, message: bytes) -> bytes:
        """``message`` if it fits the transport limit; else RESOURCE_EXHAUSTED (raised before anything is
        logged)."""
        limit = self.engine.config.server.max_message_bytes
        if len(message) > limit:
            raise Overloaded(f"the answer would be {len(message)} bytes, over the transport limit of {limit} "
                             "(server.max_message_bytes); nothing was logged: ask for fewer arms "
                             "(ranking_limit), fewer candidates or a smaller batch")
        return message

    def _observe(self, outcomes: list[DecisionOutcome], started: float) -> None:
        latency = (time.perf_counter() - started) / max(len(outcomes), 1)
        for outcome in outcomes:
            self.metrics.observe_decision(outcome.campaign, outcome.exploration, outcome.policy_version, latency,
                                          outcome="no_contact" if outcome.arm is None else "ok")

    def _failed(self, context: grpc.ServicerContext, exc: BaseException, started: float) -> None:
        code, _ = status_for(exc)
        self.metrics.observe_decision(UNKNOWN, "none", UNKNOWN, time.perf_counter() - started,
                                      outcome=_OUTCOME_OF_STATUS.get(code, "error"))
        abort_with(context, exc)

    def Decide(self, request: pb.DecideRequest, context: grpc.ServicerContext) -> bytes:
        started = time.perf_counter()
        try:
            inp = validation.decide_input(request, self.limits, self.privacy, self.known_offers)
            outcome, answer = self.combiner.decide(inp, timeout=_timeout(context))
            self._observe([outcome], started)
            return answer
        except Exception as exc:  # noqa: BLE001 - mapped to a status in one place
            self._failed(context, exc, started)

    def DecideBatch(self, request: pb.DecideBatchRequest, context: grpc.ServicerContext) -> bytes:
        started = time.perf_counter()
        try:
            inputs = validation.batch_inputs(request, self.limits, self.privacy, self.known_offers)
            built: list[bytes] = []

            def respond(outcomes: list[DecisionOutcome]) -> None:  # before anything is logged, and again if
                built[:] = [self._sized(self.encoder.batch(outcomes))]  # a repeat changed an answer

            outcomes = self.engine.decide(inputs, timeout=_timeout(context), batch=True, respond=respond)
            self._observe(outcomes, started)
            return built[0]
        except Exception as exc:  # noqa: BLE001
            self._failed(context, exc, started)

    def Reward(self, request: pb.RewardRequest, context: grpc.ServicerContext) -> pb.RewardAck:
        try:
            inp = validation.reward_input(request, self.limits)
            outcome = self.engine.reward(inp, timeout=_timeout(context))
        except Exception as exc:  # noqa: BLE001
            code, _ = status_for(exc)
            self.metrics.observe_reward(UNKNOWN, {grpc.StatusCode.NOT_FOUND: "unknown",
                                                  grpc.StatusCode.INVALID_ARGUMENT: "invalid"}.get(code, "error"))
            abort_with(context, exc)
        kind = ("retried" if outcome.retried else "late" if outcome.late else "duplicate" if outcome.duplicate
                else "accepted")
        self.metrics.observe_reward(outcome.campaign, kind)
        return pb.RewardAck(accepted=outcome.accepted, duplicate=outcome.duplicate, late=outcome.late)

    def Activate(self, request: pb.ActivateRequest, context: grpc.ServicerContext) -> pb.ActivateAck:
        try:
            event_id = validation.event_id_input(request.event_id, self.limits)
            outcome = self.engine.activate(event_id, timeout=_timeout(context))
        except Exception as exc:  # noqa: BLE001
            abort_with(context, exc)
        return pb.ActivateAck(activated=outcome.activated, already_active=outcome.already_active)

    def GetDecision(self, request: pb.GetDecisionRequest, context: grpc.ServicerContext) -> pb.DecisionRecord:
        """The logged decision, read on this call's thread from the log's readers (`service.inspection`)."""
        try:
            event_id = validation.event_id_input(request.event_id, self.limits)
            found = inspect_decision(self.engine.log, event_id)
        except Exception as exc:  # noqa: BLE001
            abort_with(context, exc)
        return record_message(found)
