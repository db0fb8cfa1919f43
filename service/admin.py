"""The operators' gRPC service (`proto/offers/v1/admin.proto`): erase a customer.

Registered only on a server with bearer tokens: `service.security` lets only tokens with the ``admin``
scope call it (an unknown method needs ``admin``), so without tokens there is no admin service at all
(UNIMPLEMENTED) rather than an open one.
"""
from __future__ import annotations

import grpc

from offers.v1 import admin_pb2 as admin_pb
from offers.v1 import admin_pb2_grpc as admin_grpc
from service.engine import DecisionEngine
from service.erasure import ErasureFollower, erase_customer
from service.status import abort_with

__all__ = ["ADMIN_SERVICE", "AdminServicer", "add_admin_to_server"]

ADMIN_SERVICE = admin_pb.DESCRIPTOR.services_by_name["AdminService"].full_name


class AdminServicer(admin_grpc.AdminServiceServicer):
    def __init__(self, engine: DecisionEngine, erasures: ErasureFollower) -> None:
        self._engine = engine
        self._erasures = erasures

    def EraseCustomer(self, request: admin_pb.EraseCustomerRequest,
                      context: grpc.ServicerContext) -> admin_pb.ErasureCounts:
        try:
            counts = erase_customer(self._engine.log, self._engine.keys, request.user_id, who="grpc:admin")
            self._erasures.poll_once()  # this server forgets at once; the others at their next poll
        except Exception as exc:  # noqa: BLE001 - mapped to a status in one place
            abort_with(context, exc)
        return admin_pb.ErasureCounts(decisions=counts.decisions, rewards=counts.rewards,
                                      shadow_scores=counts.shadow_scores, history_entries=counts.contacts)


def add_admin_to_server(servicer: AdminServicer, server: grpc.Server) -> None:
    admin_grpc.add_AdminServiceServicer_to_server(servicer, server)
