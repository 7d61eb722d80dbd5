"""HTTP basic auth for the dashboard and API (``kueatomic dashboard --auth user:password``)."""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ConfigError
from .responses import KueJSONResponse


def parse_credentials(value: str | tuple[str, str]) -> tuple[str, str]:
    """``"user:password"`` (the password may contain ':') or a ``(user, password)`` pair."""
    if isinstance(value, tuple):
        user, password = value
    else:
        user, sep, password = value.partition(":")
        if not sep:
            raise ConfigError("auth must be given as user:password")
    if not user or not password:
        raise ConfigError("auth needs a non-empty user and password (user:password)")
    return user, password


class BasicAuthMiddleware:
    """Refuses every HTTP request without the right ``Authorization: Basic`` header with 401
    and a ``WWW-Authenticate`` challenge, so browsers ask for the password."""

    def __init__(self, app: ASGIApp, credentials: str | tuple[str, str], realm: str = "Kue") -> None:
        self.app = app
        user, password = parse_credentials(credentials)
        self.expected = f"{user}:{password}".encode()
        self.realm = realm.replace('"', "'")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        response = KueJSONResponse(
            {"error": "authentication required"},
            status_code=401,
            headers={"WWW-Authenticate": f'Basic realm="{self.realm}", charset="UTF-8"'},
        )
        await response(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() != b"basic":
                    return False
                try:
                    given = base64.b64decode(token.strip(), validate=True)
                except (binascii.Error, ValueError):
                    return False
                # Constant time, so the password cannot be guessed byte by byte.
                return hmac.compare_digest(given, self.expected)
        return False
