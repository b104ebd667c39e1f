"""Standard-Webhooks signatures as the receiver checks them: the official vector, several
signatures, timestamps, missing headers, and a secret that never shows."""

from __future__ import annotations

import base64

import pytest

from kling_async import FakeClock
from kling_async.webhooks import CallbackReceiver, asgi_app
from kling_async.webhooks.signing import SignatureError, sign

from .common import (
    OK,
    SECRET,
    VECTOR_BODY,
    VECTOR_ID,
    VECTOR_SECRET,
    VECTOR_SIGNATURE,
    VECTOR_TS,
    vector_headers,
)


async def test_the_official_vector_verifies_and_one_changed_byte_does_not() -> None:
    receiver = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS))
    event = await receiver.receive(vector_headers(), VECTOR_BODY)
    assert event is not None
    assert event.verified and event.webhook_id == VECTOR_ID and event.shape == "standard"
    assert event.task.task_id == "1234567890" and event.task.task_status is OK

    for i in (0, len(VECTOR_BODY) // 2, len(VECTOR_BODY) - 2):
        tampered = bytearray(VECTOR_BODY)
        tampered[i] ^= 0x01
        fresh = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS))
        with pytest.raises(SignatureError, match="no webhook signature matches"):
            await fresh.receive(vector_headers(), bytes(tampered))
        assert fresh.refused == 1 and fresh.accepted == 0


async def test_header_names_are_case_insensitive() -> None:
    receiver = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS))
    headers = {k.upper() if k.endswith("id") else k.title(): v for k, v in vector_headers().items()}
    assert set(headers) == {"WEBHOOK-ID", "Webhook-Timestamp", "Webhook-Signature"}
    assert await receiver.receive(headers, VECTOR_BODY) is not None


@pytest.mark.parametrize(
    "signatures",
    [
        f"v1,AAAAbm90IHRoZSByaWdodCBvbmU= {VECTOR_SIGNATURE}",
        f"{VECTOR_SIGNATURE} v1,AAAAbm90IHRoZSByaWdodCBvbmU=",
        f"v2,whatever   {VECTOR_SIGNATURE}",
    ],
)
async def test_one_valid_signature_among_several_passes(signatures: str) -> None:
    receiver = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS))
    event = await receiver.receive(vector_headers(**{"webhook-signature": signatures}), VECTOR_BODY)
    assert event is not None and event.verified


async def test_repeated_signature_headers_are_all_tried() -> None:
    receiver = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS))
    pairs = [
        ("webhook-id", VECTOR_ID),
        ("webhook-timestamp", str(VECTOR_TS)),
        ("webhook-signature", "v1,AAAAbm90IHRoZSByaWdodCBvbmU="),
        ("Webhook-Signature", VECTOR_SIGNATURE),
    ]
    assert await receiver.receive(pairs, VECTOR_BODY) is not None


async def test_only_wrong_signatures_fail() -> None:
    receiver = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS))
    wrong = sign(SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY)  # right scheme, another secret
    for header in (wrong, f"v1,AAAA {wrong}", VECTOR_SIGNATURE.replace("v1,", "v2,")):
        with pytest.raises(SignatureError):
            await receiver.receive(vector_headers(**{"webhook-signature": header}), VECTOR_BODY)


@pytest.mark.parametrize(("offset", "ok"), [(-301, False), (301, False), (-299, True), (299, True)])
async def test_stale_and_future_timestamps_fail(offset: float, ok: bool) -> None:
    # the signature is right for its timestamp; only the receiver's clock differs
    receiver = CallbackReceiver(
        secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS + offset)
    )
    if ok:
        assert await receiver.receive(vector_headers(), VECTOR_BODY) is not None
    else:
        with pytest.raises(SignatureError, match="away from now"):
            await receiver.receive(vector_headers(), VECTOR_BODY)


async def test_tolerance_is_configurable() -> None:
    clock = FakeClock(start_time=VECTOR_TS + 30)
    strict = CallbackReceiver(secret=VECTOR_SECRET, clock=clock, tolerance=10)
    with pytest.raises(SignatureError):
        await strict.receive(vector_headers(), VECTOR_BODY)


@pytest.mark.parametrize(
    "headers",
    [
        {"webhook-timestamp": str(VECTOR_TS), "webhook-signature": VECTOR_SIGNATURE},
        {"webhook-id": VECTOR_ID, "webhook-signature": VECTOR_SIGNATURE},
        {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TS)},
        {},
        vector_headers(**{"webhook-timestamp": "yesterday"}),
        vector_headers(**{"webhook-signature": ""}),
    ],
    ids=["no-id", "no-timestamp", "no-signature", "none", "bad-timestamp", "empty-signature"],
)
async def test_missing_or_malformed_headers_fail(headers: dict[str, str]) -> None:
    receiver = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS))
    with pytest.raises(SignatureError):
        await receiver.receive(headers, VECTOR_BODY)


async def test_conflicting_webhook_ids_fail() -> None:
    receiver = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS))
    pairs = [*vector_headers().items(), ("webhook-id", "another")]
    with pytest.raises(SignatureError):
        await receiver.receive(pairs, VECTOR_BODY)


async def test_the_secret_never_shows() -> None:
    key_b64 = VECTOR_SECRET.removeprefix("whsec_")
    key = base64.b64decode(key_b64)
    receiver = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS + 999))
    errors: list[BaseException] = []
    for headers, body in (
        (vector_headers(), VECTOR_BODY),  # stale
        ({}, VECTOR_BODY),  # missing
        (vector_headers(**{"webhook-timestamp": str(VECTOR_TS + 999)}), VECTOR_BODY),  # mismatch
    ):
        with pytest.raises(SignatureError) as info:
            await receiver.receive(headers, body)
        errors.append(info.value)
    with pytest.raises(ValueError, match="base64") as bad_secret:
        CallbackReceiver(secret="whsec_" + key_b64[:-3] + "!!!")
    errors.append(bad_secret.value)
    shown = [repr(receiver), str(receiver), repr(asgi_app(receiver))]
    shown += [text for err in errors for text in (str(err), repr(err))]
    for text in shown:
        assert key_b64[:12] not in text and VECTOR_SECRET[:16] not in text
        assert key.decode("latin-1")[:12] not in text
    assert "signed=True" in repr(receiver)


async def test_an_empty_secret_is_refused_rather_than_read_as_unsigned() -> None:
    with pytest.raises(ValueError, match="empty"):
        CallbackReceiver(secret="")


async def test_without_a_secret_events_are_unverified_and_headers_ignored() -> None:
    receiver = CallbackReceiver(clock=FakeClock(start_time=VECTOR_TS + 10_000))
    event = await receiver.receive(vector_headers(**{"webhook-signature": "v1,junk"}), VECTOR_BODY)
    assert event is not None and not event.verified and event.webhook_id == VECTOR_ID
    assert "signed=False" in repr(receiver)
