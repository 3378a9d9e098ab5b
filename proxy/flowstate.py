"""What the addon knows about one request across its hooks, in one typed object. Pure.

mitmproxy calls a request's hooks one after another (``requestheaders``, ``request``,
``responseheaders``, ``response`` or ``error``); what one hook decides, the next one needs. It
all lives in a :class:`FlowState` stored under a single key of ``flow.metadata``, read and
written only through :func:`state_of`.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from proxy.leaks import LeakScanner, StreamLeakScanner
from proxy.policy import Decision
from proxy.rewrite import Outcome
from proxy.runs import RunPolicy, RunSecret
from proxy.substitute import Swap

if TYPE_CHECKING:
    from proxy.engine import RunView

KEY = "coatcheck"


@dataclass(slots=True)
class FlowState:
    view: RunView | None = None  # the run as of this request: one vault ``stat``, reused
    decision: Decision | None = None  # the last word on this request (the audit line's)
    start: float | None = None  # time.monotonic() when its headers arrived
    dest: tuple[str, int] | None = None  # the real destination (the tunnel's), for the audit
    secrets: tuple[RunSecret, ...] = ()  # the secrets that may be injected into it
    out: Outcome | None = None  # the rewrite so far; set once the head was checked
    swaps: list[Swap] = field(default_factory=list)
    scanner: LeakScanner | None = None  # placeholders that must not go to this destination
    body_scanner: StreamLeakScanner | None = None  # set when the body streams
    injected: list[str] = field(default_factory=list)  # names of the secrets swapped in
    forwarded: bool = False  # handed on to go upstream: only then does the audit name `injected`
    leaks: list[str] = field(default_factory=list)  # names of placeholders seen leaking
    scrub_body: bool = False  # the response is buffered and scrubbed whole in `response`
    audited: bool = False  # its audit line is written

    @property
    def run(self) -> RunPolicy | None:
        return self.view.run if self.view is not None else None


def state_of(metadata: MutableMapping[str, Any]) -> FlowState:
    """The flow's state, created empty on first use."""
    state = metadata.get(KEY)
    if not isinstance(state, FlowState):
        state = metadata[KEY] = FlowState()
    return state
