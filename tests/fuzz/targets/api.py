"""The HTTP API's request models and the chat WebSocket's text frames."""

from __future__ import annotations

from engine.api.chat import read_frame
from engine.api.context import ApiError, parse_body
from engine.api.contract import ActivityIn, ChatMessageIn, PhoneCallIn, PresenceIn
from tests.fuzz.targets import Target, corpus_files

API_MODELS = (ChatMessageIn, PhoneCallIn, ActivityIn, PresenceIn)


def validate_api_body(body: bytes) -> None:
    """A request body as each write endpoint reads it (``parse_body``): refused by
    ``ApiError`` (422), whose body must serialise; a valid one serialises too."""
    for model in API_MODELS:
        try:
            parsed = parse_body(model, body)
        except ApiError as error:
            error.body.model_dump_json()
            continue
        parsed.model_dump_json()


def read_chat_frame(frame: bytes) -> None:
    """A WebSocket text frame as the socket reads it before anything is stored: the
    message, or the refusal it answers with; never raises. aiohttp hands over valid UTF-8
    only (it closes a socket that sends other text with 1007)."""
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError:
        return
    read_frame(text).model_dump_json()


TOKENS = (
    b'"message_id"', b'"sender"', b'"customer_id"', b'"text"', b'"call_id"', b'"caller"',
    b'"summary"', b'"agent"', b'"activity"', b'"actor"', b'"waiting_on"', b'"presence"',
    b'"suggested_priority"', b'"P1"', b'"minutes"', b"1e999", b"-0", b"null", b"true",
    b"[" * 20, b"{" * 20, b'{"a":' * 20, b'"\\u0000"', b'"\\ud800"', b'"\\u2028"', b'\\"',
    b'"x@y.z"', b'"a@b.c, d@e.f"', "ﬃ".encode(), "½".encode(), b"\xef\xbb\xbf", b"\r\n",
)  # fmt: skip
MAX_LEN = 16 * 1024
TARGETS = {
    "api_models": Target(
        "api_models", validate_api_body, "ApiError (422)",
        lambda: corpus_files("api", "*.json"), MAX_LEN, TOKENS,
    ),
    "chat_websocket": Target(
        "chat_websocket", read_chat_frame, "none: a refusal is a value",
        lambda: corpus_files("chat", "*.json"), MAX_LEN, TOKENS,
    ),
}  # fmt: skip
