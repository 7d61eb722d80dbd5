"""Kue's JSON API and dashboard as an ASGI app: ``create_app(queue, title="Kue")``."""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
