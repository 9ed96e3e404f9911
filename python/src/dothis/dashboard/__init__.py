"""The dashboard: every queue, task and worker read from Redis through the protocol alone, live,
with the actions of the producer's API (``dothis dashboard``, or ``create_app`` mounted in any
ASGI application). Needs the ``dashboard`` extra: ``pip install 'dothis[dashboard]'``."""

from __future__ import annotations

from dothis.dashboard.app import create_app
from dothis.dashboard.security import DashboardExposed, check_exposure

__all__ = ["DashboardExposed", "check_exposure", "create_app"]
