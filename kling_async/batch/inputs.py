"""What ``extend_many`` reads: request objects or mappings, and the stable key of each."""

from __future__ import annotations

import collections
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from typing import Any

from ..requests import REQUEST_TYPES, CreateRequest
from ..requests.fields import build_request
from ..serde import dumps, unstructure_request

__all__ = ["RequestLike", "as_request", "each", "request_key"]


RequestLike = CreateRequest | Mapping[str, Any]


def request_key(request: CreateRequest, seen: collections.Counter[str]) -> str:
    """A stable key for a request within a batch: its ``external_task_id``, else a hash of its
    kind and fields plus how many identical requests came before it (so re-runs match up)."""
    external = getattr(request, "external_task_id", None)
    if external is not None:
        return str(external)
    digest = hashlib.sha256(
        dumps({"kind": request.kind, "body": unstructure_request(request)})
    ).hexdigest()[:16]
    n = seen[digest]
    seen[digest] += 1
    return f"{digest}#{n}"


def as_request(item: RequestLike) -> CreateRequest:
    """A request object, or a mapping of its fields with an optional ``kind`` (default
    ``video-extend``)."""
    if isinstance(item, tuple(REQUEST_TYPES.values())):
        return item  # type: ignore[return-value]
    if isinstance(item, Mapping):
        fields = dict(item)
        return build_request(fields.pop("kind", "video-extend"), fields)
    raise TypeError(f"expected a request or a mapping, got {type(item).__name__}")


async def each(requests: Iterable[RequestLike] | AsyncIterable[RequestLike]) -> AsyncIterator[Any]:
    if isinstance(requests, AsyncIterable):
        async for item in requests:
            yield item
    else:
        for item in requests:
            yield item
