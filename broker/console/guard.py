"""What every console answer goes through: security headers (a strict Content-Security-Policy), the
anti-CSRF check on actions, and errors turned into `{error, message}` through the one table."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from logstore.broker.auth.security import Security
from logstore.broker.console.errors import ForbiddenError, body_for, status_for
from logstore.broker.console.permissions import Principal, Resource
from logstore.broker.console.translate import json_response
from logstore.broker.domain.errors import ShuttingDownError

log = logging.getLogger("logstore.broker.console")

CSRF_HEADER = "X-Logstore-Console"
"""Actions must carry this header: a page on another origin cannot add it without a CORS preflight,
which the console never approves."""
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
ACTIONS = {"POST", "PUT", "PATCH", "DELETE"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every answer, the anti-CSRF check on actions, and errors as JSON."""
    try:
        if request.method in ACTIONS:
            check_origin(request)
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = json_response(
            {"error": exc.reason.upper().replace(" ", "_"), "message": exc.text or exc.reason}, exc.status
        )
    except Exception as exc:
        status = status_for(exc)
        if status == 500:
            log.exception("console request %s %s failed", request.method, request.path)
        response = json_response(body_for(exc), status)
    if response.status == 401:  # the browser asks for a user name and password, and sends them again
        response.headers["WWW-Authenticate"] = 'Basic realm="logstore console", charset="UTF-8"'
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    return response


def check_origin(request: web.Request) -> None:
    if request.headers.get(CSRF_HEADER) != "1":
        raise ForbiddenError(f"actions need the header {CSRF_HEADER}: 1 (the console page sends it)")
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise ForbiddenError(f"actions from another origin ({origin}) are refused")


def login(security_of: Callable[[], Security | None]) -> Middleware:
    """With --require-auth: every console request logs in with HTTP Basic credentials (a broker user's
    name and password, checked as the gRPC listener checks them); what it then shows and allows is what
    the user's ACLs allow (`permissions.acl_may`). Inside `guard`, which answers a refusal 401 (the
    browser then asks for the password) or 403."""

    @web.middleware
    async def logged_in(request: web.Request, handler: Handler) -> web.StreamResponse:
        security = security_of()  # the HTTP port opens before the log (and the users) are loaded
        if security is None:
            raise ShuttingDownError("the broker is still starting (loading its users); try again in a moment")
        header = request.headers.get("Authorization")
        principal = await security.authenticate_basic(header, request.remote or "", listener="http")
        request[PRINCIPAL] = principal
        request[SUPER_USER] = security.is_super_user(principal)
        return await handler(request)

    return logged_in


PRINCIPAL = web.RequestKey("principal", str)
"""The logged-in principal of a request (set by `login`)."""
SUPER_USER = web.RequestKey("super_user", bool)


def principal_of(request: web.Request) -> Principal:
    """Who is asking: the logged-in user with --require-auth, else anonymous (the loopback rule applies)."""
    name = request.get(PRINCIPAL)
    if name is not None:
        return Principal(
            name, request.remote or "", super_user=request.get(SUPER_USER, False), authenticated=True
        )
    return Principal("User:ANONYMOUS", request.remote or "")


def refuse(principal: Principal, operation: str, resource: Resource) -> ForbiddenError:
    what = "the cluster" if resource.kind == "cluster" else f"{resource.kind} {resource.name!r}"
    if principal.authenticated:
        return ForbiddenError(
            f"{principal.name} is not authorized to {operation} {what} (no ACL allows it, or one denies it)"
        )
    return ForbiddenError(
        f"{principal.name} from {principal.address} may not {operation} {what}: "
        "with authentication off, the console allows actions only from 127.0.0.1"
    )
