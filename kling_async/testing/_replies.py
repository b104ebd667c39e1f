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

__all__ = ["ApiError", "Reply", "encode", "failure", "success"]


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
