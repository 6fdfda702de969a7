"""Timing helper shared by the bench scripts (run as `python bench/<script>.py`)."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def median_seconds(function: Callable[[], Any], repeats: int) -> float:
    """Median wall time of `repeats` calls of `function`, in seconds, after one warm-up call.

    The warm-up absorbs imports, numba compilation and cache loading, which a user pays once.
    """
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def replace_section(path: Path, begin: str, end: str, body: str, fallback_header: str) -> None:
    """Replace the text between `begin` and `end` in `path` (appending it when absent)."""
    text = path.read_text(encoding="utf-8") if path.exists() else fallback_header
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: body, text)
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    if not text.endswith("\n"):
        text += "\n"
    path.write_text(text, encoding="utf-8")
