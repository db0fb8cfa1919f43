"""Bytes that are not a valid message are the caller's mistake: ``INVALID_ARGUMENT``, never ``INTERNAL``.

gRPC Python answers a request its deserializer cannot parse with ``INTERNAL "Exception deserializing
request!"``, before any servicer code runs. :class:`MalformedRequestInterceptor` wraps every unary
method's deserializer so a parse failure (corrupt wire format, a string field that is not UTF-8, ...)
becomes a :class:`Malformed` value, and the method answers it with ``INVALID_ARGUMENT`` naming the
message type. The wrapped handlers are built once per method.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

__all__ = ["Malformed", "MalformedRequestInterceptor"]


@dataclass(frozen=True, slots=True)
class Malformed:
    """What a request's bytes became when they could not be parsed."""

    reason: str


def _tolerant(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's malformed message
            return Malformed(str(exc) or type(exc).__name__)
    return parse


def _refusing(method: str, behaviour: Callable[[Any, grpc.ServicerContext], Any]) -> Callable:
    def answer(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, Malformed):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"the request to {method} is not a valid message: {request.reason}")
        return behaviour(request, context)
    return answer


class MalformedRequestInterceptor(grpc.ServerInterceptor):
    """Answers unparsable unary requests with INVALID_ARGUMENT (see the module docstring)."""

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}
        self._lock = threading.Lock()

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method = handler_call_details.method
        with self._lock:
            cached = self._handlers.get(method)
        if cached is not None:
            return cached
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler
        wrapped = grpc.unary_unary_rpc_method_handler(
            _refusing(method, handler.unary_unary),
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer)
        with self._lock:
            self._handlers[method] = wrapped
        return wrapped
