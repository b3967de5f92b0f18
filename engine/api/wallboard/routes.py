"""The wallboard over HTTP.

- ``GET /wallboard`` and its script and style: the page, public (it holds no data; it asks
  for a ``tickets:read`` token and keeps it in the tab's sessionStorage).
- ``GET /wallboard/state`` (``tickets:read``): the snapshot, as JSON.
- ``GET /wallboard/events`` (``tickets:read``): server-sent events, read by the page with
  ``fetch`` so that the token travels in the Authorization header (an EventSource cannot
  send one, and a token in the URL would end up in histories and proxies' logs):
  ``snapshot`` (a Wallboard) at once, then whenever the view changes, at most every
  ``MIN_INTERVAL_SECONDS``, and every ``REFRESH_SECONDS`` anyway (ages, the inflow's hour
  and the consumer lag move with the clock); ``heartbeat`` every ``HEARTBEAT_SECONDS``
  of quiet, so the page can tell a silent stream from a dead one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from importlib import resources

from aiohttp import hdrs, web

from engine.api.board import Board
from engine.api.context import ApiContext, context_of, requires
from engine.api.security import Scope
from engine.api.wallboard.snapshot import Wallboard, snapshot

MIN_INTERVAL_SECONDS = 0.5
HEARTBEAT_SECONDS = 15.0
REFRESH_SECONDS = 30.0
STATIC = resources.files("engine.api.wallboard") / "static"
# The page runs only its own script and style and talks only to this server.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    hdrs.CACHE_CONTROL: "no-cache",
}


class WallboardHub:
    """Tells the open streams that the view changed, and shares one snapshot between
    them for ``MIN_INTERVAL_SECONDS``."""

    def __init__(self, board: Board) -> None:
        self.version = 0
        self.closing = False
        self._changed = asyncio.Event()
        self._last: tuple[int, float, Wallboard] | None = None
        board.listeners.append(self._on_change)

    def _on_change(self) -> None:
        self.version += 1
        self._changed.set()

    async def close(self, app: web.Application) -> None:
        """The server is stopping: the streams end now rather than at its timeout."""
        self.closing = True
        self._changed.set()

    async def wait_change(self, seen: int, seconds: float) -> bool:
        """True once the view changed after version ``seen`` (or the server is stopping);
        False after ``seconds``."""
        while self.version == seen and not self.closing:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), seconds)
            except TimeoutError:
                return self.version != seen
        return True

    def snapshot(self, context: ApiContext) -> Wallboard:
        now = asyncio.get_running_loop().time()
        if self._last is not None:
            version, built_at, kept = self._last
            if version == self.version and now - built_at < MIN_INTERVAL_SECONDS:
                return kept
        board = snapshot(context.view, context.clock.now(), context.view_ready())
        self._last = (self.version, now, board)
        return board


WALLBOARD = web.AppKey("wallboard", WallboardHub)


def _static(name: str, content_type: str) -> web.Response:
    return web.Response(
        body=(STATIC / name).read_bytes(),
        content_type=content_type,
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )


async def wallboard_page(request: web.Request) -> web.Response:
    return _static("index.html", "text/html")


async def wallboard_script(request: web.Request) -> web.Response:
    return _static("wallboard.js", "text/javascript")


async def wallboard_style(request: web.Request) -> web.Response:
    return _static("wallboard.css", "text/css")


@requires(Scope.TICKETS_READ)
async def wallboard_state(request: web.Request) -> web.Response:
    board = request.app[WALLBOARD].snapshot(context_of(request))
    return web.Response(
        body=board.model_dump_json().encode(),
        content_type="application/json",
        headers={hdrs.CACHE_CONTROL: "no-store"},
    )


def _event(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()


@requires(Scope.TICKETS_READ)
async def wallboard_events(request: web.Request) -> web.StreamResponse:
    context = context_of(request)
    hub = request.app[WALLBOARD]
    response = web.StreamResponse(
        headers={
            hdrs.CONTENT_TYPE: "text/event-stream",
            hdrs.CACHE_CONTROL: "no-store",
            "X-Accel-Buffering": "no",  # a reverse proxy must not hold the events back
        }
    )
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionResetError):
        await response.write(b"retry: 3000\n\n")
        while not hub.closing:
            seen = hub.version
            board = hub.snapshot(context)
            await response.write(_event("snapshot", board.model_dump_json()))
            refresh_at = loop.time() + REFRESH_SECONDS
            await asyncio.sleep(MIN_INTERVAL_SECONDS)
            while (left := refresh_at - loop.time()) > 0 and not hub.closing:
                if await hub.wait_change(seen, min(HEARTBEAT_SECONDS, left)):
                    break
                if refresh_at - loop.time() > 0 and not hub.closing:
                    at = json.dumps({"at": context.clock.now().isoformat()})
                    await response.write(_event("heartbeat", at))
    return response
