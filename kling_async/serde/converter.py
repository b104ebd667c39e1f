"""The one cattrs converter, its per-field hooks, and the JSON codec every module of serde uses.

Reading is tolerant (unknown keys ignored, ``null`` lists read as empty, numeric ids read as
strings, duration strings read as numbers); a wrong shape raises :class:`ResponseFormatError`
naming the JSON path and carrying the ``request_id`` (:func:`_format_error`). orjson is used
when installed. The hooks here are shared by every record shape and by the fast paths that
mirror them (:mod:`.envelope`, :mod:`.records`); each shape registers its own classes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

import cattrs
from cattrs.gen import make_dict_structure_fn

from ..errors import ResponseFormatError, excerpt

__all__ = ["dumps", "json_excerpt", "loads"]

T = TypeVar("T")


def _stdlib_loads(data: bytes | str) -> Any:
    """``json.loads``, with too deep nesting reported like any other bad JSON (a ValueError):
    a server choosing how deep its answer nests must not raise RecursionError in our caller."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def json_excerpt(body: Any) -> str:
    """The start of ``body`` as JSON for an error excerpt (never failing on a hostile value)."""
    try:
        return json.dumps(body, default=str)[:400]
    except (RecursionError, ValueError):
        return "<unprintable JSON value>"


try:  # orjson is several times faster on the hot path (every poll decodes one envelope).
    import orjson

    loads: Callable[[bytes | str], Any] = orjson.loads

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - exercised in environments without orjson
    loads = _stdlib_loads

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


_converter = cattrs.Converter(detailed_validation=True)


def _id(value: Any, _: Any) -> str:
    # Ids are opaque strings; a relay that sends an 18-digit id as a JSON number must not lose
    # it (floats would round it), so only exact integers are accepted besides strings.
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string id, got {type(value).__name__}")


def _text(value: Any, _: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _opt_text(value: Any, _: Any) -> str | None:
    return None if value is None else _text(value, _)


def _seconds(value: Any, _: Any) -> float | None:
    # Durations are strings of seconds on the wire ("5.1"); some relays send numbers.
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"expected a finite duration, got {value!r}")
    return number


def _millis(value: Any, _: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a millisecond timestamp, got {type(value).__name__}")
    return int(value)


def _units(value: Any, _: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected units as a string, got {type(value).__name__}")


def _quantity(value: Any, _: Any) -> float:
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number of units, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number of units, got {value!r}")
    return number


def _tuple_of(item: type[T]) -> Callable[[Any, Any], tuple[T, ...]]:
    # cattrs' own tuple hook reports the failing index in the JSON path; JSON null reads as ().
    structure = _converter.get_structure_hook(tuple[item, ...])  # type: ignore[valid-type]

    def hook(value: Any, type_: Any) -> tuple[T, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {type(value).__name__}")
        return structure(value, type_)  # type: ignore[no-any-return]

    return hook


def _register(cls: type[T], *, null_is_default: bool = False, **overrides: Any) -> None:
    """Register the structure hook for ``cls``; ``null_is_default`` reads JSON null as ``cls()``."""
    structure = make_dict_structure_fn(cls, _converter, **overrides)
    if not null_is_default:
        _converter.register_structure_hook(cls, structure)
        return

    def hook(value: Any, _: Any) -> T:
        return cls() if value is None else structure(value, cls)

    _converter.register_structure_hook(cls, hook)


def _format_error(
    exc: Exception, *, root: str, request_id: str | None, http_status: int | None, body: Any
) -> ResponseFormatError:
    details = "; ".join(cattrs.transform_error(exc, path=root)) or str(exc)
    path = details.rsplit(" @ ", 1)[-1] if " @ " in details else root
    return ResponseFormatError(
        f"unexpected response shape: {details}",
        http_status=http_status,
        request_id=request_id,
        body_excerpt=excerpt(json_excerpt(body)),
        path=path,
    )
