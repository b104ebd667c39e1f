"""A secret rotation (kling-api.md 6.3): several space-separated signatures in one header, any
valid one passes; with the official test vector as the valid one."""

from __future__ import annotations

import pytest

from kling_async.webhooks.signing import SignatureError, sign, verify

from .common import VECTOR_BODY, VECTOR_ID, VECTOR_SECRET, VECTOR_SIGNATURE, VECTOR_TS

OLD = "whsec_" + "b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZA=="


def check(header: str, secret: str = VECTOR_SECRET, body: bytes = VECTOR_BODY) -> None:
    verify(secret, msg_id=VECTOR_ID, timestamp=VECTOR_TS, signature=header, body=body,
           now=VECTOR_TS)  # fmt: skip


@pytest.mark.parametrize(
    "header",
    [
        f"{sign(OLD, VECTOR_ID, VECTOR_TS, VECTOR_BODY)} {VECTOR_SIGNATURE}",
        f"{VECTOR_SIGNATURE} {sign(OLD, VECTOR_ID, VECTOR_TS, VECTOR_BODY)}",
        f"v1,bm90LWl0  v2,{VECTOR_SIGNATURE[3:]}   {VECTOR_SIGNATURE}",
    ],
)
def test_any_valid_signature_of_several_passes(header: str) -> None:
    check(header)
    if sign(OLD, VECTOR_ID, VECTOR_TS, VECTOR_BODY) in header:
        check(header, secret=OLD)


@pytest.mark.parametrize(
    "header",
    [
        sign(OLD, VECTOR_ID, VECTOR_TS, VECTOR_BODY),  # signed only with a secret we do not hold
        f"v2,{VECTOR_SIGNATURE[3:]}",  # the right MAC under an unknown scheme
        f"{VECTOR_SIGNATURE}x v1,",
    ],
)
def test_no_valid_signature_among_several_fails(header: str) -> None:
    with pytest.raises(SignatureError):
        check(header)


def test_a_valid_signature_of_another_body_fails() -> None:
    with pytest.raises(SignatureError):
        check(f"{VECTOR_SIGNATURE} {VECTOR_SIGNATURE}", body=VECTOR_BODY + b" ")
