"""Who may see the dashboard, and who may act: basic auth or the host application's own check,
a per-process CSRF token on every form, and the refusal to expose actions without a login."""

from __future__ import annotations

import base64
import binascii
import hmac
import inspect
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from dothis.errors import DothisError

# The host application's check: given the request, True to let it through (may be async).
AuthCheck = Callable[[Request], bool | Awaitable[bool]]
Auth = AuthCheck | tuple[str, str] | str | None


class DashboardExposed(DothisError):
    """Actions on a dashboard that anyone on the network could reach."""

    code = "dashboard-exposed"


def parse_credentials(value: str) -> tuple[str, str]:
    """``user:password`` as a pair; DothisError when it is not one."""
    user, colon, password = value.partition(":")
    if not (user and colon and password):
        raise DothisError("--auth takes user:password (both non-empty), e.g. --auth admin:s3cret")
    return user, password


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, read_only: bool, auth: Auth) -> None:
    """Refuse to serve actions beyond loopback without authentication."""
    if read_only or auth is not None or is_loopback(host):
        return
    raise DashboardExposed(
        f"the dashboard would listen on {host}, beyond loopback, with its actions (requeue, "
        "cancel, empty, delete) open to anyone: give --auth user:password, or --read-only, or "
        "--host 127.0.0.1"
    )


def basic_check(user: str, password: str) -> AuthCheck:
    expected = (user.encode(), password.encode())

    def check(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given_user, _, given_password = base64.b64decode(encoded).partition(b":")
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given_user, expected[0]) & hmac.compare_digest(
            given_password, expected[1]
        )

    return check


def as_check(auth: Auth) -> AuthCheck:
    """The check of ``auth``: basic auth for credentials, the callable itself otherwise."""
    if isinstance(auth, str):
        auth = parse_credentials(auth)
    if isinstance(auth, tuple):
        return basic_check(*auth)
    if auth is None:
        raise ValueError("no authentication to check")
    return auth


class Guard:
    """ASGI middleware: every request (pages, API, events, static files) passes ``check``; a
    refused one gets 401 (with a basic-auth challenge when the check is basic auth)."""

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.challenge = not callable(auth)
        self.check = as_check(auth)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        allowed = self.check(Request(scope, receive))
        if inspect.isawaitable(allowed):
            allowed = await allowed
        if allowed:
            await self.app(scope, receive, send)
            return
        headers = {"WWW-Authenticate": 'Basic realm="dothis"'} if self.challenge else {}
        response = PlainTextResponse("authentication required", 401, headers=headers)
        await response(scope, receive, send)


class Csrf:
    """A token made once per process, put in every form and required by every POST, and the
    Origin check: a POST whose Origin (when the browser sends one) is another site is refused."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(32)

    def allows(self, request: Request, form: dict[str, Any]) -> bool:
        given = str(form.get("csrf", ""))
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return False
        origin = request.headers.get("origin")
        if origin and origin != "null":
            return urlsplit(origin).netloc == request.headers.get("host", "")
        return True
