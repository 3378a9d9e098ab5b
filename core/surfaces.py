"""Where a secret's placeholder may be swapped for its value, and the placeholder formats:
rules the vault stores and the proxy enforces."""

from __future__ import annotations

from typing import Final, Literal

SURFACES: Final = ("header", "basic", "query", "body")
DEFAULT_SURFACES: Final = ("header", "basic")
PLACEHOLDER_FORMATS: Final = ("opaque", "shaped")

PlaceholderFormat = Literal["opaque", "shaped"]
