"""Where result media may be fetched from: the :class:`MediaPolicy` and its checks.

A media URL comes from the server (a task answer, or a callback anyone may have posted), so a
download is a request the server chooses. The policy keeps it to the public internet over
https: private, loopback, link-local and other special addresses are refused, whether the URL
names them literally or a host name resolves to them (checked at connect time, by the resolver
of the download session, so a name cannot resolve one way for the check and another for the
connection), and every redirect is checked again before it is followed.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Any

import attrs
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from .errors import DownloadError

__all__ = ["MediaPolicy", "PolicyResolver", "is_local_url", "warn_plain_http"]

log = logging.getLogger("kling_async")
_warned_plain_http: set[str] = set()


def warn_plain_http(base: str) -> None:
    """Once per API base URL: credentials and prompts would cross the network in clear text."""
    if base.startswith("http://") and not is_local_url(base) and base not in _warned_plain_http:
        _warned_plain_http.add(base)
        log.warning(
            "base_url %s is plain http and not this machine: the API key or token and every "
            "request travel unencrypted; use https",
            base,
        )


@attrs.frozen
class MediaPolicy:
    """What a download may fetch.

    ``allow_http``: plain-http media URLs (https only otherwise). ``allow_private``: hosts on
    private, loopback, link-local, multicast or reserved addresses. ``max_redirects``: how many
    redirects one download follows, each checked like the first URL.

    The client's default is :meth:`for_base_url`: strict for a remote API, open for a local
    one (the emulator serves its media on loopback over http).
    """

    allow_http: bool = False
    allow_private: bool = False
    max_redirects: int = 5

    @classmethod
    def for_base_url(cls, base_url: str) -> MediaPolicy:
        local = is_local_url(base_url)
        return cls(allow_http=local, allow_private=local)

    def check(self, url: URL) -> None:
        """Raise :class:`DownloadError` if ``url`` itself breaks the policy (the scheme, or a
        literal address); host names are checked when they are resolved."""
        if url.scheme not in ("https", "http") or not url.host:
            raise DownloadError(f"refused media URL {_shown(url)}: not an http(s) URL")
        if url.scheme == "http" and not self.allow_http:
            raise DownloadError(
                f"refused media URL {_shown(url)}: plain http "
                "(MediaPolicy(allow_http=True) allows it)"
            )
        address = _address(url.host)
        if address is not None and not self.allow_private and not _public(address):
            raise DownloadError(
                f"refused media URL {_shown(url)}: {address} is not a public address "
                "(MediaPolicy(allow_private=True) allows it)"
            )


def _shown(url: URL) -> str:
    # Enough to recognise the host; query strings of signed CDN URLs carry tokens.
    return repr(str(url.with_query(None).with_fragment(None))[:200])


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def is_local_url(url: str) -> bool:
    """Whether ``url``'s host is this machine (``localhost`` or a loopback address)."""
    host = (URL(url).host or "").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = _address(host)
    return address is not None and address.is_loopback


class AddressRefused(OSError):
    """A host name resolved only to addresses the policy refuses."""


class PolicyResolver(AbstractResolver):
    """The system resolver, keeping only public addresses (for a policy without
    ``allow_private``). aiohttp skips resolvers for literal addresses: those are checked by
    :meth:`MediaPolicy.check`."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        kept = [r for r in results if _usable(r)]
        if not kept:
            raise AddressRefused(
                f"{host} resolves to no public address "
                "(MediaPolicy(allow_private=True) allows private ones)"
            )
        return kept

    async def close(self) -> None:
        await self._inner.close()


def _usable(result: Any) -> bool:
    address = _address(str(result["host"]))
    return address is not None and _public(address)
