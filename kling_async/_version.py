"""The package version, in a room of its own so that no module needs the package root."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0.dev0"
