"""Errors only the HTTP API raises; both join kueatomic's one hierarchy (``KueError``), so the
app's single exception handler answers them like every other error."""

from __future__ import annotations

from ..errors import InvalidArgument, KueError


class UnsupportedMediaType(InvalidArgument):
    """The body is not declared as JSON. Refusing it also keeps cross-site HTML forms (which
    cannot send application/json without a CORS preflight) from creating jobs."""

    http_status = 415


class RepeatNotFound(KueError):
    """``DELETE /repeats/{name}`` of a name no repeatable job has."""

    http_status = 404


class SearchDisabled(KueError):
    """The queue was made with ``disable_search=True``; a valid request the server's set-up
    cannot answer, so 409 rather than 400."""

    http_status = 409


class HostNotAllowed(InvalidArgument):
    """The request's Host is not one this app answers to: refused before anything else, so
    a page on a rebinding DNS name (evil.example resolving to 127.0.0.1) reaches nothing."""


class CrossSiteRequest(KueError):
    """A state-changing request that ``Origin`` or ``Sec-Fetch-Site`` says another site's
    page sent; only the dashboard's own origin (or a client that is no browser) may."""

    http_status = 403
