"""Parts of a value, and the exact forms the proxy itself made of one. Pure.

The scrubber replaces a real value wherever a response carries it whole, in any spelling a
client decodes back to it (:mod:`proxy.scrub`). A *fragment* of a value can't be scrubbed in
general: any short run of bytes also occurs by chance, and a hostile upstream that holds the
value can send it back one slice at a time, in any order or disguise. What the proxy does about
it:

- **Range requests.** An upstream that honours ``Range`` returns any slice of what it echoes,
  one byte per request if asked. ``Range`` and ``If-Range`` are removed from every request a
  value was injected into, or whose body a body-surface value may go into
  (:func:`without_range`, :meth:`proxy.engine.RunView.after_injection`), and a ``206 Partial
  Content`` to a request that carried a value is refused with a 502 (``partial_response``;
  :func:`proxy.channels.response_refusal`).
- **A minimum length.** ``vault set`` refuses values under 8 bytes, which could not be told
  from chance matches.
- **The Basic token the proxy made.** With the ``basic`` surface the proxy decodes
  ``Authorization: Basic``, swaps the value in and re-encodes it: the base64 of ``user:value``
  it sends is an exact form of the value whose edges mix in the user's bits, so an echo of it
  is scrubbed as a whole, back to the base64 of ``user:placeholder``
  (:func:`basic_token_pairs`, added to the run's scrub pairs).

What is left, by design: an allowlisted upstream that is hostile can still return a value in
fragments of its own choosing (a slice per request, every other byte); scrubbing finds only
the whole value. Keep values long and give them only to upstreams trusted with them.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from proxy.substitute import Swap, basic_payload

Fields = tuple[tuple[bytes, bytes], ...]
Pairs = tuple[tuple[bytes, bytes], ...]
RANGE_HEADERS = frozenset((b"range", b"if-range"))


def without_range(fields: Fields) -> Fields:
    """``fields`` without ``Range`` and ``If-Range`` (``fields`` itself when it has neither)."""
    if not any(k.lower() in RANGE_HEADERS for k, _ in fields):
        return fields
    return tuple((k, v) for k, v in fields if k.lower() not in RANGE_HEADERS)


def basic_token_pairs(before: Fields, after: Fields, swaps: Sequence[Swap]) -> Pairs:
    """For each ``Authorization: Basic`` field the rewrite changed (``before`` and ``after`` it),
    the token sent and the base64 of what it holds with each value back to its placeholder:
    ``(base64("user:value"), base64("user:placeholder"))``."""
    old = {v for k, v in before if k.lower() == b"authorization"}
    pairs: list[tuple[bytes, bytes]] = []
    for key, raw in after:
        if key.lower() != b"authorization" or raw in old:
            continue
        text = basic_payload(raw.decode("latin-1"))
        if text is None or not any(s.value in text for s in swaps):
            continue  # (a header-surface swap of a whole pre-encoded token: scrubbed as is)
        for s in swaps:
            text = text.replace(s.value, s.placeholder)
        token = raw.split()[-1]
        pairs.append((token, base64.b64encode(text.encode("utf-8", "surrogateescape"))))
    return tuple(pairs)
