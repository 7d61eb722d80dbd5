"""Security headers on every response the app sends: JSON, the page, assets, errors, 401s and
500s. One pure ASGI middleware around the whole Starlette stack (``create_app`` wraps it
outside Starlette's own error middleware), so no response can leave without them."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The page's scripts only come from this origin, and job data is always inserted as text;
# the policy is a second line of defence against markup in job data.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# Everything else is data: nothing in it may load or run, and no page may frame it.
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"

COMMON_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


def security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with the security headers added where the response did not set them; an
    HTML response gets the page's Content-Security-Policy, any other the data one."""
    present = {name.lower() for name, _ in headers}
    out = list(headers)
    if b"content-security-policy" not in present:
        media_type = next((value for name, value in headers if name.lower() == b"content-type"),
                          b"")
        html = media_type.split(b";")[0].strip().lower() == b"text/html"
        out.append((b"content-security-policy", (PAGE_POLICY if html else DATA_POLICY).encode()))
    out.extend((name, value) for name, value in COMMON_HEADERS if name not in present)
    return out


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": security_headers(list(message.get("headers", [])))}
            await send(message)

        await self.app(scope, receive, send_secured)
