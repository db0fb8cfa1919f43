"""Who may call the server: TLS (optionally mutual) credentials and scoped bearer tokens.

The token file holds one token per line, ``<token> <scope>[,<scope>...]``; blank lines and lines
starting with ``#`` are ignored. Scopes:

- ``decide``: Decide, DecideBatch, GetDecision;
- ``reward``: Reward, Activate;
- ``admin``: every call.

A line with a bare token grants every scope (so a file holding one bare token, the CONTRACT's original
format, keeps working). No or an unknown token -> UNAUTHENTICATED; a known token without the call's
scope -> PERMISSION_DENIED. Health is always open; server reflection is open only with
``public_reflection`` (``serve --public-reflection``), else any valid token may use it. Any other
method (a future admin call) needs ``admin``: unknown calls fail closed.
"""
from __future__ import annotations

import hashlib
import logging
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import grpc

from offerbandit.errors import InvalidInput

__all__ = ["SCOPES", "BearerTokenInterceptor", "TlsFiles", "TokenTable", "read_tokens"]

SCOPES = ("decide", "reward", "admin")
_DECISION_SERVICE = "/offers.v1.DecisionService/"
SCOPE_OF_METHOD = MappingProxyType({
    f"{_DECISION_SERVICE}Decide": "decide",
    f"{_DECISION_SERVICE}DecideBatch": "decide",
    f"{_DECISION_SERVICE}GetDecision": "decide",
    f"{_DECISION_SERVICE}Reward": "reward",
    f"{_DECISION_SERVICE}Activate": "reward",
})
_HEALTH = "/grpc.health.v1.Health/"
_REFLECTION = "/grpc.reflection."
_ANY_TOKEN = ""  # the scope of reflection behind the token: any valid token
log = logging.getLogger("offerbandit.security")


@dataclass(frozen=True)
class TlsFiles:
    """The server's certificate and key; with ``client_ca``, clients must present a certificate it signed."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        try:
            cert, key = Path(self.cert).read_bytes(), Path(self.key).read_bytes()
            ca = Path(self.client_ca).read_bytes() if self.client_ca is not None else None
        except OSError as exc:
            raise InvalidInput(f"cannot read TLS file {exc.filename}: {exc.strerror}", field="tls") from exc
        if ca is not None and b"-----BEGIN CERTIFICATE-----" not in ca:
            raise InvalidInput(f"--tls-client-ca {self.client_ca} holds no PEM certificate", field="tls-client-ca")
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenTable:
    """Tokens and their scopes. Tokens are kept only as SHA-256 digests, looked up by digest (no timing
    difference between a near miss and a far one)."""

    def __init__(self, scopes_of: Mapping[str, Iterable[str]]) -> None:
        if not scopes_of:
            raise InvalidInput("no tokens given", field="auth-token-file")
        table: dict[bytes, frozenset[str]] = {}
        for token, scopes in scopes_of.items():
            scopes = frozenset(scopes)
            unknown = sorted(scopes - set(SCOPES))
            if unknown:
                raise InvalidInput(f"unknown token scope(s) {', '.join(unknown)}; scopes are {', '.join(SCOPES)}",
                                   field="auth-token-file")
            table[_digest(token)] = frozenset(SCOPES) if "admin" in scopes else scopes
        self._table = table

    @classmethod
    def single(cls, token: str) -> "TokenTable":
        """One token with every scope."""
        return cls({token: SCOPES})

    def scopes(self, token: str) -> frozenset[str] | None:
        """The scopes of ``token``, or ``None`` for a token not in the table."""
        return self._table.get(_digest(token))


def read_tokens(path: Path) -> TokenTable:
    """Parse a token file (module docstring); one-line errors name the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        mode = stat.S_IMODE(path.stat().st_mode)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InvalidInput(f"cannot read auth token file {path}: {reason}", field="auth-token-file") from exc
    scopes_of: dict[str, tuple[str, ...]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) > 2:
            raise InvalidInput(f"auth token file {path} line {number}: expected '<token> <scope>[,<scope>]'",
                               field="auth-token-file")
        token = parts[0]
        scopes = tuple(s.strip() for s in parts[1].split(",") if s.strip()) if len(parts) == 2 else SCOPES
        if token in scopes_of:
            raise InvalidInput(f"auth token file {path} line {number}: the token appears twice",
                               field="auth-token-file")
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise InvalidInput(f"auth token file {path} line {number}: unknown scope(s) {', '.join(unknown) or '(none)'};"
                               f" scopes are {', '.join(SCOPES)}", field="auth-token-file")
        scopes_of[token] = scopes
    if not scopes_of:
        raise InvalidInput(f"auth token file {path} is empty", field="auth-token-file")
    if mode & 0o007:
        log.warning("auth token file %s is readable by others (mode %04o); chmod 600 it", path, mode)
    return TokenTable(scopes_of)


def _denial(handler: grpc.RpcMethodHandler | None, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` (unary or streaming) that aborts with ``code``."""
    def deny(request, context):  # noqa: ANN001 - grpc handler signature
        context.abort(code, message)

    def deny_stream(request, context):  # noqa: ANN001
        context.abort(code, message)
        yield  # pragma: no cover - abort raises

    request_streaming = bool(handler and handler.request_streaming)
    response_streaming = bool(handler and handler.response_streaming)
    if request_streaming and response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny_stream)
    if request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny_stream)
    return grpc.unary_unary_rpc_method_handler(deny)


def _bearer(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Every call except health (and reflection, when public) must carry a token with its scope."""

    def __init__(self, tokens: TokenTable | str, *, public_reflection: bool = False) -> None:
        self._tokens = TokenTable.single(tokens) if isinstance(tokens, str) else tokens
        self._public_reflection = public_reflection

    def _needed_scope(self, method: str) -> str | None:
        """The scope ``method`` needs; ``None`` for an open method."""
        if method.startswith(_HEALTH):
            return None
        if method.startswith(_REFLECTION):
            return None if self._public_reflection else _ANY_TOKEN
        return SCOPE_OF_METHOD.get(method, "admin")

    def intercept_service(self, continuation, handler_call_details):  # noqa: ANN001
        method = handler_call_details.method
        needed = self._needed_scope(method)
        if needed is None:
            return continuation(handler_call_details)
        token = _bearer(handler_call_details.invocation_metadata)
        scopes = self._tokens.scopes(token) if token is not None else None
        if scopes is None:
            return _denial(continuation(handler_call_details), grpc.StatusCode.UNAUTHENTICATED,
                           "missing or invalid bearer token")
        if needed != _ANY_TOKEN and needed not in scopes:
            return _denial(continuation(handler_call_details), grpc.StatusCode.PERMISSION_DENIED,
                           f"this token lacks the {needed!r} scope that {method} needs")
        return continuation(handler_call_details)
