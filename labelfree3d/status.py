"""One-line status reports from long library steps, shown by whoever is listening.

Library code calls `report_status("hdbscan: clustering 10,000 voxels")` before a step that can take
long (structure detection, a clustering estimator, writing). Nothing is printed unless a caller
installed a listener with `status_listener` (the CLI does: a spinner line on a terminal, plain
lines on stderr otherwise), so the library stays silent when used from Python.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

__all__ = ["report_status", "status_listener"]

_LISTENER: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar(
    "labelfree3d_status_listener", default=None
)


def report_status(message: str) -> None:
    """Tell the installed listener (if any) which step starts now, in one line."""
    listener = _LISTENER.get()
    if listener is not None:
        listener(message)


@contextlib.contextmanager
def status_listener(listener: Callable[[str], None]) -> Iterator[None]:
    """Send every `report_status` message inside the block to `listener`."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)
