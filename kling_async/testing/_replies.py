"""The JSON envelope every answer uses, and the business errors that fill it (kling-api.md 2, 7).

Success: ``{code: 0, message: "SUCCEED", request_id, data}``. Error: ``{code, message,
request_id}`` only, with the HTTP status the official error table pairs with the code.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
from aiohttp import web

__all__ = ["DOCUMENTED", "ApiError", "Reply", "encode", "failure", "success"]

# Every non-zero code of the official error table (kling-api.md 7): its HTTP status and a
# message in the table's words, for refusals planned with ``KlingEmulator.refuse``.
DOCUMENTED: dict[int, tuple[int, str]] = {
    1000: (401, "Authentication failed"),
    1001: (401, "Authorization is empty"),
    1002: (401, "Authorization is invalid"),
    1003: (401, "Authorization is not yet valid"),
    1004: (401, "Authorization has expired"),
    1100: (429, "Account exception"),
    1101: (429, "Account in arrears (postpaid)"),
    1102: (429, "Account balance not enough"),
    1103: (403, "No permission to access the requested resource, such as API/model"),
    1200: (400, "Invalid request parameters"),
    1201: (400, "Invalid parameters: a key is wrong or a value is illegal"),
    1202: (404, "The requested method is invalid"),
    1203: (404, "The requested resource does not exist, such as the model"),
    1300: (400, "Trigger platform strategy"),
    1301: (400, "Trigger the content security policy of the platform"),
    1302: (429, "The API request is too fast, exceeding the platform's rate limit"),
    1303: (429, "parallel task over resource pack limit"),
    1304: (429, "Trigger the platform's IP whitelisting policy"),
    5000: (500, "Server internal error"),
    5001: (503, "Server temporarily unavailable, usually due to maintenance"),
    5002: (504, "Server internal timeout, usually due to a backlog"),
}


class ApiError(Exception):
    """A refusal the emulator answers with an error envelope."""

    def __init__(
        self,
        http_status: int,
        code: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.http_status = http_status
        self.code = code
        self.message = message
        self.headers: Mapping[str, str] = dict(headers or {})

    @classmethod
    def documented(cls, code: int, message: str | None = None) -> ApiError:
        """The refusal the error table (kling-api.md 7) gives ``code``, with its HTTP status."""
        if code not in DOCUMENTED:
            raise ValueError(f"{code} is not a documented error code: {sorted(DOCUMENTED)}")
        status, text = DOCUMENTED[code]
        return cls(status, code, message or text)

    @classmethod
    def bad_body(cls, message: str) -> ApiError:
        """1200: the body as a whole is unusable (not JSON, not an object)."""
        return cls(400, 1200, message)

    @classmethod
    def invalid(cls, message: str) -> ApiError:
        """1201: one field is missing or illegal; ``message`` names it."""
        return cls(400, 1201, message)

    @classmethod
    def not_found(cls, message: str) -> ApiError:
        """1203: the resource (route, task) does not exist."""
        return cls(404, 1203, message)


@attrs.frozen
class Reply:
    """An answer before it is written: HTTP status, JSON payload, extra headers."""

    status: int
    payload: dict[str, Any]
    headers: Mapping[str, str] = attrs.field(factory=dict)

    def response(self) -> web.Response:
        return web.Response(
            status=self.status,
            body=encode(self.payload),
            content_type="application/json",
            headers=self.headers,
        )


def _request_id() -> str:
    return str(uuid.uuid4())


def success(data: object) -> Reply:
    return Reply(200, {"code": 0, "message": "SUCCEED", "request_id": _request_id(), "data": data})


def failure(error: ApiError) -> Reply:
    payload = {"code": error.code, "message": error.message, "request_id": _request_id()}
    return Reply(error.http_status, payload, error.headers)


def encode(payload: object) -> bytes:
    """Compact UTF-8 JSON, as the server and the callbacks send it."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
