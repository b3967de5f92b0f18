"""The aiohttp application: routes, and the middlewares every request passes, outermost
first:

1. ``answer_errors``: refusals and unexpected errors become JSON; one log line per request
   (method, route, status, integration: never a token, a query string or a body);
2. ``check_origin``: a browser's Origin must be on the allowlist (403), CORS answers;
3. ``authenticate``: bearer token (401), scope (403), rate limits (429): a chat route's
   per conversation and per client address first, then the token's;
4. the body limit: Content-Length over the limit is 413 before anything is read, and
   aiohttp's ``client_max_size`` stops a body without one.
"""

from __future__ import annotations

import functools
import logging
import time
from http import HTTPStatus

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware
from prometheus_client import Counter

from engine import metrics
from engine.api.chat import HUB, ChatHub, chat_websocket
from engine.api.context import (
    CONTEXT,
    INTEGRATION,
    ApiContext,
    ApiError,
    Handler,
    context_of,
    required_scope,
)
from engine.api.desk import get_agent_queue, get_queues, post_presence
from engine.api.openapi import openapi_document
from engine.api.reads import get_ticket, health, list_tickets
from engine.api.security import Integration
from engine.api.wallboard.routes import (
    WALLBOARD,
    WallboardHub,
    wallboard_events,
    wallboard_page,
    wallboard_script,
    wallboard_state,
    wallboard_style,
)
from engine.api.writes import post_activity, post_chat_message, post_phone_call
from engine.metrics import ApiMethod, ApiRoute

log = logging.getLogger("engine.api.access")

ROUTES = (
    ("POST", ApiRoute.CHAT_MESSAGES, post_chat_message),
    ("GET", ApiRoute.CHAT_SOCKET, chat_websocket),
    ("POST", ApiRoute.PHONE_CALLS, post_phone_call),
    ("POST", ApiRoute.TICKET_ACTIVITY, post_activity),
    ("GET", ApiRoute.TICKET, get_ticket),
    ("GET", ApiRoute.TICKETS, list_tickets),
    ("GET", ApiRoute.HEALTH, health),
    ("POST", ApiRoute.AGENT_PRESENCE, post_presence),
    ("GET", ApiRoute.QUEUES, get_queues),
    ("GET", ApiRoute.AGENT_QUEUE, get_agent_queue),
    ("GET", ApiRoute.WALLBOARD, wallboard_page),
    ("GET", ApiRoute.WALLBOARD_SCRIPT, wallboard_script),
    ("GET", ApiRoute.WALLBOARD_STYLE, wallboard_style),
    ("GET", ApiRoute.WALLBOARD_STATE, wallboard_state),
    ("GET", ApiRoute.WALLBOARD_EVENTS, wallboard_events),
)
CORS_HEADERS = "Authorization, Content-Type"
# What aiohttp's own refusals (404, 405) say besides their text.
KEPT_HEADERS = frozenset({hdrs.ALLOW, hdrs.RETRY_AFTER})


def _route_name(request: web.Request) -> ApiRoute:
    """The route's template (bounded, for logs and metrics), never the concrete path."""
    info = request.match_info.route.resource
    return ApiRoute(info.canonical) if info is not None else ApiRoute.UNMATCHED


def _method_name(request: web.Request) -> ApiMethod:
    """HTTP's own methods by name, any extension method as ``other`` (bounded, for metrics)."""
    return ApiMethod(request.method) if request.method in hdrs.METH_ALL else ApiMethod.OTHER


@web.middleware
async def answer_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.monotonic()
    try:
        response = await handler(request)
    except ApiError as error:
        response = error.response()
    except web.HTTPRequestEntityTooLarge:
        limit = context_of(request).max_body_bytes
        response = ApiError(413, f"the body is larger than {limit} bytes").response()
    except web.HTTPException as error:
        if error.status < 400:
            raise
        kept = {name: value for name, value in error.headers.items() if name in KEPT_HEADERS}
        response = ApiError(error.status, error.reason, headers=kept).response()
    except Exception:
        log.exception("%s %s failed", request.method, _route_name(request))
        response = ApiError(500, "internal error").response()
    route = _route_name(request)
    _requests_counter(_method_name(request), route, response.status).inc()
    if log.isEnabledFor(logging.INFO):
        integration = request.get(INTEGRATION)
        log.info(
            "%s %s %d %.1fms %s", request.method, route, response.status,
            (time.monotonic() - started) * 1000, integration.name if integration else "-",
        )  # fmt: skip
    return response


@functools.cache
def _requests_counter(method: ApiMethod, route: ApiRoute, status: int) -> Counter:
    """The request counter's child for these labels, looked up once (all bounded)."""
    return metrics.API_REQUESTS.labels(method, route, HTTPStatus(status))


@web.middleware
async def check_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return await handler(request)
    if origin not in context_of(request).allowed_origins:
        raise ApiError(403, "this Origin is not allowed; ask for it to be added")
    if request.method == hdrs.METH_OPTIONS:
        response: web.StreamResponse = web.Response(status=204)
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "GET, POST"
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = CORS_HEADERS
        response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = "600"
    else:
        response = await handler(request)
    response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
    response.headers[hdrs.VARY] = hdrs.ORIGIN
    return response


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    scope = required_scope(request.match_info.route.handler)
    if scope is None:
        return await handler(request)
    context = context_of(request)
    declared = request.content_length
    if declared is not None and declared > context.max_body_bytes:
        raise ApiError(413, f"the body is larger than {context.max_body_bytes} bytes")
    integration = await _authenticated(request, context)
    request[INTEGRATION] = integration
    if scope not in integration.scopes:
        raise ApiError(403, f"this token lacks the scope {scope.value}")
    conversation = request.match_info.get("conversation_id")
    if conversation is not None:
        wait = context.chat_limit.retry_after(conversation, request.remote or "unknown")
        if wait:
            raise ApiError(429, "too many messages from this conversation or address",
                           headers={hdrs.RETRY_AFTER: str(wait)})  # fmt: skip
    wait = context.limiter.retry_after(integration.name)
    if wait:
        raise ApiError(429, "too many requests for this token",
                       headers={hdrs.RETRY_AFTER: str(wait)})  # fmt: skip
    return await handler(request)


async def _authenticated(request: web.Request, context: ApiContext) -> Integration:
    """The caller's integration, or 401. A client that keeps presenting unknown tokens is
    slowed down (429) before each costly hash check. The attempt is counted before the
    check is awaited (and given back when the token proves good), so requests sent all at
    once cannot each pass the limit while the others are still being checked."""
    token = _bearer(request)
    if token is None:
        raise _unauthorized()
    integration = context.verifier.known(token)
    if integration is not None:
        return integration
    client = request.remote or "unknown"
    wait = context.failed_logins.retry_after(client)
    if wait:
        raise ApiError(429, "too many invalid tokens from this address",
                       headers={hdrs.RETRY_AFTER: str(wait)})  # fmt: skip
    integration = await context.verifier.verify(token)
    if integration is None:
        raise _unauthorized()
    context.failed_logins.give_back(client)
    return integration


def _unauthorized() -> ApiError:
    return ApiError(401, "a valid bearer token is needed",
                    headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="engine"'})  # fmt: skip


def _bearer(request: web.Request) -> str | None:
    """From the Authorization header; browsers cannot set it on a WebSocket, so there the
    ``access_token`` query parameter is taken too (query strings are never logged)."""
    scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
        return request.query.get("access_token") or None
    return None


async def serve_openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


OPENAPI = web.AppKey("openapi", dict)


def build_app(context: ApiContext, hub: ChatHub) -> web.Application:
    middlewares: list[Middleware] = [answer_errors, check_origin, authenticate]
    app = web.Application(middlewares=middlewares, client_max_size=context.max_body_bytes)
    app[CONTEXT] = context
    app[HUB] = hub
    app[OPENAPI] = openapi_document()
    app[WALLBOARD] = WallboardHub(context.view.board)
    app.on_shutdown.append(app[WALLBOARD].close)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    app.router.add_get(ApiRoute.OPENAPI, serve_openapi)
    return app
