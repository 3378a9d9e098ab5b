"""Hooks never raise: the guard every addon hook runs under. Pure.

mitmproxy logs an exception raised by a hook and carries on with the flow, half-checked. So
each hook runs under :func:`guarded`, which hands any exception to the addon's fail-closed
handler instead; :func:`internal_error` is the refusal it gives, naming the hook and the
exception's type, never its message (which could quote a value).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from proxy.policy import Decision, deny
from proxy.reasons import Reason

Hook = TypeVar("Hook", bound=Callable[..., Any])
Fail = Callable[[Any, Any, str, Exception], None]


def internal_error(hook: str, exc: BaseException) -> Decision:
    return deny(Reason.INTERNAL_ERROR, f"{hook}: {type(exc).__name__}")


def guarded(fail: Fail) -> Callable[[Hook], Hook]:
    """Decorate a hook method ``hook(self, arg)``, sync or async: an exception it raises goes
    to ``fail(self, arg, hook_name, exc)``, which must not raise either."""

    def wrap(hook: Hook) -> Hook:
        name = hook.__name__
        if inspect.iscoroutinefunction(hook):

            async def run_async(self: Any, arg: Any) -> None:
                try:
                    await hook(self, arg)
                except Exception as exc:
                    fail(self, arg, name, exc)

            return functools.wraps(hook)(run_async)  # type: ignore[return-value]

        def run(self: Any, arg: Any) -> None:
            try:
                hook(self, arg)
            except Exception as exc:
                fail(self, arg, name, exc)

        return functools.wraps(hook)(run)  # type: ignore[return-value]

    return wrap
