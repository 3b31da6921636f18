"""The API token: with `api_token` set, reading the service needs `Authorization: Bearer <token>`.

Deny by default: every path needs the token except the few that must stay open —
`POST /webhooks/*` (senders authenticate with their signatures), `/healthz` and `/readyz` (probes
of load balancers and orchestrators) and the API's own description (`/openapi.json`, `/docs`,
`/redoc`), which holds no data and which a browser cannot send a token to. Any endpoint added
later is protected without further work.

The token is compared in constant time (SHA-256 digests of both, so not even its length leaks);
a missing or wrong token gets 401 with the common error body.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from ingest.responses import error_response

PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
WEBHOOK_PREFIX = "/webhooks/"


def is_public(method: str, path: str) -> bool:
    """True for the requests that never need the API token."""
    return path in PUBLIC_PATHS or (method == "POST" and path.startswith(WEBHOOK_PREFIX))


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class BearerTokenMiddleware:
    """ASGI middleware: 401 for a request to a protected path without the right bearer token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("the API token must not be empty")
        self.app = app
        self._expected = _digest(token.encode("utf-8"))

    def authorized(self, authorization: bytes | None) -> bool:
        if authorization is None:
            return False
        scheme, _, credentials = authorization.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(_digest(credentials.strip()), self._expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        authorization = next(
            (value for name, value in scope["headers"] if name == b"authorization"), None
        )
        if self.authorized(authorization):
            await self.app(scope, receive, send)
            return
        message = (
            "this endpoint needs the API token: send `Authorization: Bearer <token>` "
            "(the service's SHOPPULSE_API_TOKEN)"
        )
        response = error_response(
            401, "unauthorized", message, {"WWW-Authenticate": 'Bearer realm="shoppulse"'}
        )
        await response(scope, receive, send)
