"""The URL form Cluster and Sentinel share: ``scheme://[user:password@]host:port[,host:port...]
[/path][?option=value...]``, split into its nodes, credentials, path and typed options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from .errors import ConfigError


@dataclass
class NodesUrl:
    nodes: list[tuple[str, int]]
    credentials: dict[str, str]  # username / password, as given
    path: list[str]  # the path's non-empty segments
    options: dict[str, Any]  # query options, converted
    scheme: str


def parse_nodes_url(url: str, kind: str, default_port: int,
                    options: dict[str, Callable[[str], Any]]) -> NodesUrl:
    """Split ``url``; ``kind`` names the URL in errors ("cluster", "Sentinel"), ``options``
    the query options allowed and how to read each. Raises ConfigError."""
    parsed = urlparse(url)
    netloc = parsed.netloc
    credentials: dict[str, str] = {}
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        if user:
            credentials["username"] = unquote(user)
        if password:
            credentials["password"] = unquote(password)
    nodes = []
    for text in filter(None, netloc.split(",")):
        host, _, port = text.rpartition(":") if ":" in text else (text, "", str(default_port))
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{kind} URL {url!r}: {text!r} is not host:port")
        nodes.append((host, int(port)))
    found: dict[str, Any] = {}
    for name, values in parse_qs(parsed.query, keep_blank_values=True).items():
        if name not in options:
            raise ConfigError(f"{kind} URL option {name!r} is unknown; use {sorted(options)}")
        try:
            found[name] = options[name](values[-1])
        except ValueError:
            raise ConfigError(f"{kind} URL option {name}={values[-1]!r} is not valid") from None
    return NodesUrl(nodes, credentials, [p for p in parsed.path.split("/") if p], found,
                    parsed.scheme)
