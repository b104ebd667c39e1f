"""Tests of kling_async.webhooks: signing, payloads, the receiver, the aiohttp and ASGI adapters."""
