"""What every handler shares: the context of the running API, the error every refusal is
raised as, and the helpers that validate input and shape JSON answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from engine.api.contract import ErrorBody, Problem
from engine.api.security import ChatLimit, Integration, RateLimiter, Scope, TokenVerifier
from engine.api.view import TicketView
from engine.clock import Clock
from engine.errors import EngineError, field_path
from engine.kafka.publisher import Publisher

RETRY_AFTER_SECONDS = 5
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")


@dataclass(frozen=True)
class ApiContext:
    publisher: Publisher
    view: TicketView
    verifier: TokenVerifier
    limiter: RateLimiter
    failed_logins: RateLimiter
    chat_limit: ChatLimit
    clock: Clock
    source: str
    allowed_origins: frozenset[str]
    max_body_bytes: int
    view_ready: Callable[[], bool]


CONTEXT = web.AppKey("context", ApiContext)
INTEGRATION = web.RequestKey("integration", Integration)


def context_of(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def integration_of(request: web.Request) -> Integration:
    return request[INTEGRATION]


class ApiError(EngineError):
    """A refusal: its status, what is wrong, and where (``problems``)."""

    def __init__(
        self,
        status: int,
        error: str,
        problems: tuple[Problem, ...] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.body = ErrorBody(error=error, problems=problems)
        self.headers = headers or {}

    def response(self) -> web.Response:
        return model_response(self.body, self.status, self.headers)


def retry_later(reason: str) -> ApiError:
    return ApiError(503, reason, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


VIEW_LOADING = "the ticket view is still being loaded from Kafka; retry later"


def raise_unknown(context: ApiContext, ticket_id: str) -> NoReturn:
    """404, unless the view is still loading: then the ticket may well exist (503)."""
    if not context.view_ready():
        raise retry_later(VIEW_LOADING)
    raise ApiError(404, f"no ticket {ticket_id}")


def invalid(error: ValidationError, prefix: str = "") -> ApiError:
    problems = tuple(
        Problem(path=prefix + field_path(issue["loc"]) or "body", message=issue["msg"])
        for issue in error.errors()
    )
    return ApiError(422, "the request is not valid: " + "; ".join(
        f"{p.path}: {p.message}" for p in problems), problems)  # fmt: skip


def parse_body(model: type[_M], body: bytes) -> _M:
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise invalid(error) from None


def parse_parameter(adapter: TypeAdapter[_T], name: str, value: str) -> _T:
    try:
        return adapter.validate_python(value)
    except ValidationError as error:
        raise invalid(error, prefix=name) from None


def model_response(
    model: BaseModel, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=model.model_dump_json().encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def requires(scope: Scope) -> Callable[[Handler], Handler]:
    """Marks a handler with the scope its caller's token needs (checked by middleware)."""

    def mark(handler: Handler) -> Handler:
        handler.required_scope = scope  # type: ignore[attr-defined]
        return handler

    return mark


def required_scope(handler: Any) -> Scope | None:
    return getattr(handler, "required_scope", None)
