"""Who may talk to the app: a Host allow-list (against DNS rebinding) and a same-origin rule
for state changes (against cross-site requests), checked before anything else, auth
included. One pure ASGI middleware; refusals are JSON ``{"error": ...}`` like every error.

1. ``Host`` must be a loopback name (localhost, 127.0.0.1, [::1]) or one of
   ``allowed_hosts``, with any port ("*" allows all; "*.example.com" any subdomain): 400.
2. Unsafe methods (POST, PUT, DELETE, PATCH) and the routes that change state on a safe
   method (Kue's ``GET /inactive/:id``) are refused with 403 when ``Sec-Fetch-Site`` is
   ``cross-site`` or ``same-site`` (another port of the same host is "same-site") or when
   ``Origin`` is not the request's own scheme, host and port. Requests without either header
   (curl, scripts, other servers) are no browser's and pass.
3. A body sent with an unsafe method must be declared JSON (415): an HTML form cannot send
   that without a CORS preflight, which the app never grants.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ConfigError, KueError
from .body import check_json_media_type
from .errors import CrossSiteRequest, HostNotAllowed
from .responses import KueJSONResponse

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
UNSAFE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ALLOWED_SITES = ("same-origin", "none")  # none: typed in, a bookmark


def split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header as (name, port): the name lower case, without a trailing dot, an IPv6
    address in brackets; None when it is no valid host[:port]."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        name, rest = value[:end + 1], value[end + 1:]
        if end < 0 or not _ipv6(name[1:-1]):
            return None
    else:
        name, colon, port_text = value.partition(":")
        rest = colon + port_text
    name = name.rstrip(".")
    if not name or any(c in name for c in "/\\@ ?#"):
        return None
    if not rest:
        return name, None
    port = rest[1:]
    if not rest.startswith(":") or not port.isascii() or not port.isdigit() or int(port) > 65535:
        return None
    return name, int(port)


def _ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


def normalize_allowed_host(entry: str) -> str:
    """An allow-list entry as it is matched: lower case, IPv6 in brackets; a port given with
    it is dropped (every port of an allowed name is allowed)."""
    text = entry.strip().lower()
    if text == "*" or text.startswith("*."):
        if text != "*" and split_host(text[2:]) is None:
            raise ConfigError(f"allowed host {entry!r} is not a host name pattern")
        return text
    if _ipv6(text):
        text = f"[{text}]"
    parsed = split_host(text)
    if parsed is None:
        raise ConfigError(f"allowed host {entry!r} is not a host name or address")
    return parsed[0]


def allowed_hosts_list(extra: Iterable[str] | None) -> tuple[str, ...]:
    """The loopback names and ``extra``, normalized, without repeats."""
    names = [*LOOPBACK_HOSTS, *(normalize_allowed_host(e) for e in (extra or ()))]
    return tuple(dict.fromkeys(names))


def host_allowed(name: str, allowed: Sequence[str]) -> bool:
    for entry in allowed:
        if entry == "*" or entry == name:
            return True
        if entry.startswith("*.") and name.endswith(entry[1:]):
            return True
    return False


def own_origin(scope: Scope, host: tuple[str, int | None] | None) -> tuple[str, str, int | None]:
    """The request's own (scheme, host, port), as an Origin header would name it."""
    scheme = str(scope.get("scheme", "http"))
    if host is None:
        server = scope.get("server") or ("", None)
        name, port = str(server[0]), server[1]
        if _ipv6(name):
            name = f"[{name}]"
    else:
        name, port = host
    return scheme, name.strip("[]"), port if port is not None else _DEFAULT_PORTS.get(scheme)


def origin_tuple(origin: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname or parts.path not in ("", "/"):
        return None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname.rstrip("."), port if port is not None else _DEFAULT_PORTS.get(scheme)


def cross_site_reason(scope: Scope, headers: Headers,
                      host: tuple[str, int | None] | None) -> str | None:
    """Why a browser says another site sent this request, or None."""
    site = headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in _ALLOWED_SITES:
        return f"Sec-Fetch-Site: {site}"
    origin = headers.get("origin")
    if origin is not None and origin_tuple(origin) != own_origin(scope, host):
        return f"Origin {origin} is not this server's"
    return None


class RequestGuard:
    """The checks in the module docstring, in that order, before the wrapped app runs."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str],
                 state_changing: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.allowed_hosts = tuple(allowed_hosts)
        self.state_changing = tuple(state_changing)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self.check(scope, Headers(scope=scope))
        except KueError as exc:
            await KueJSONResponse({"error": str(exc)}, status_code=exc.http_status)(
                scope, receive, send)
            return
        await self.app(scope, receive, send)

    def changes_state(self, scope: Scope) -> bool:
        if scope["method"] in UNSAFE_METHODS:
            return True
        return any(route.matches(scope)[0] is not Match.NONE for route in self.state_changing)

    def check(self, scope: Scope, headers: Headers) -> None:
        host_header = headers.get("host")
        host = None if host_header is None else split_host(host_header)
        if host_header is not None and (host is None or not host_allowed(host[0],
                                                                         self.allowed_hosts)):
            raise HostNotAllowed(
                f"Host {host_header!r} is not allowed; this server answers to "
                f"{', '.join(self.allowed_hosts)} (any port). Add a name with kueatomic "
                "dashboard --allow-host NAME or create_app(queue, allowed_hosts=[NAME])")
        if not self.changes_state(scope):
            return
        reason = cross_site_reason(scope, headers, host)
        if reason is not None:
            raise CrossSiteRequest(
                f"cross-site request refused ({reason}): only pages of this server's own "
                f"origin may {scope['method']} {scope['path']}")
        if scope["method"] in UNSAFE_METHODS and _has_body(headers):
            check_json_media_type(headers.get("content-type"))


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return "transfer-encoding" in headers or (length is not None and length.strip() != "0")
