"""Who may call the server: TLS credentials and the bearer-token check on every call but health and
reflection."""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

import grpc

from offerbandit.errors import InvalidInput

_OPEN_METHODS = ("/grpc.health.v1.Health/", "/grpc.reflection.")


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path

    def credentials(self) -> grpc.ServerCredentials:
        try:
            cert, key = self.cert.read_bytes(), self.key.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read TLS file: {exc}", field="tls") from exc
        return grpc.ssl_server_credentials([(key, cert)])


def read_token(path: Path) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InvalidInput(f"cannot read auth token file {path}: {exc.strerror}", field="auth-token-file") from exc
    if not token:
        raise InvalidInput(f"auth token file {path} is empty", field="auth-token-file")
    return token


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Every call except health and reflection must carry ``authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode("utf-8")

        def deny(request, context):  # noqa: ANN001 - grpc handler signature
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation, handler_call_details):  # noqa: ANN001
        if handler_call_details.method.startswith(_OPEN_METHODS):
            return continuation(handler_call_details)
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization" and hmac.compare_digest(str(value).encode("utf-8"), self._expected):
                return continuation(handler_call_details)
        return self._deny
