"""kling_async: an asyncio-native client for the Kling AI video API."""

from __future__ import annotations

__version__ = "0.1.0.dev0"
