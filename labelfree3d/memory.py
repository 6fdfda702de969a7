"""Memory budget: refuse up front what cannot fit instead of swapping or being killed.

Long steps (TSDF fusion, segmentation of millions of points) estimate their peak resident memory
before they allocate it (each from a model of its own, measured on the shared scans: see
docs/benchmarks.md, "Memory and scale") and call `check_memory`, which raises `MemoryBudgetError`
(a one-line `ParameterError`, exit status 2 in the CLI) naming the estimate, the budget and a
setting that would fit.

The budget is the peak resident set size (RSS) the process may reach:

* `LABELFREE3D_MEMORY_BUDGET` when set: a size such as ``8G``, ``512M``, ``1.5GiB`` or a number
  of bytes (``0`` or ``off`` switches the check off);
* otherwise the RSS the process already holds plus 90 % of the memory the system reports
  available (psutil's ``virtual_memory().available`` when installed, else ``MemAvailable`` in
  /proc/meminfo); no limit when neither can be read.
"""

from __future__ import annotations

import os
import re

from labelfree3d.errors import ParameterError

__all__ = [
    "BUDGET_VARIABLE",
    "MemoryBudgetError",
    "available_memory",
    "check_memory",
    "current_rss",
    "fits",
    "format_bytes",
    "memory_budget",
    "parse_size",
]

BUDGET_VARIABLE = "LABELFREE3D_MEMORY_BUDGET"
# share of the available memory a step may plan to use: the rest is left to the page cache and
# to other processes that allocate while the step runs
AVAILABLE_SHARE = 0.9

_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


class MemoryBudgetError(ParameterError):
    """A request whose estimated peak memory exceeds the budget (refused before it allocates)."""


def parse_size(text: str) -> int:
    """Bytes in a size such as "8G", "512 MB", "1.5GiB", "2t" or "1000000" (binary units).

    Raises:
        ParameterError: not a size.
    """
    match = _SIZE.match(str(text))
    if not match:
        raise ParameterError(f"{BUDGET_VARIABLE}={text!r} is not a size (examples: 8G, 512M, 1.5GiB, 1000000)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_bytes(count: float) -> str:
    """A byte count for messages: "812 MB", "23.4 GB", "1.2 TB" (binary units, written MB/GB/TB)."""
    for unit, size in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20)):
        if count >= size:
            value = count / size
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{count / 2**10:.0f} KB"


def available_memory() -> int | None:
    """Bytes the system can give new allocations without swapping (psutil, else /proc/meminfo); None if unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def current_rss() -> int:
    """Resident set size of this process now, bytes (0 when it cannot be read)."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pass
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_budget() -> tuple[int | None, str]:
    """(peak RSS this process may reach in bytes or None for no limit, where the figure comes from)."""
    setting = os.environ.get(BUDGET_VARIABLE, "").strip()
    if setting:
        if setting.lower() in ("0", "off", "none"):
            return None, f"{BUDGET_VARIABLE}={setting}"
        return parse_size(setting), f"{BUDGET_VARIABLE}={setting}"
    available = available_memory()
    if available is None:
        return None, "unknown available memory"
    return current_rss() + int(AVAILABLE_SHARE * available), f"{format_bytes(available)} available"


def check_memory(what: str, additional: float, suggestion: str = "") -> None:
    """Refuse a step that would take the process past its memory budget.

    Args:
        what: the request, as the message should name it (e.g. "fuse --voxel 0.0001 (100 frames)").
        additional: estimated bytes the step allocates on top of what the process holds now.
        suggestion: what would fit, appended to the message (e.g. "use --voxel 0.006 or larger").

    Raises:
        MemoryBudgetError: current RSS + `additional` exceeds `memory_budget()`.
    """
    budget, source = memory_budget()
    if budget is None:
        return
    peak = current_rss() + additional
    if peak <= budget:
        return
    hint = f"; {suggestion}" if suggestion else ""
    raise MemoryBudgetError(
        f"{what} needs about {format_bytes(peak)} of memory, more than the budget of {format_bytes(budget)} "
        f"({source if source.startswith(BUDGET_VARIABLE) else f'{source}; set {BUDGET_VARIABLE} to override'}){hint}"
    )


def fits(additional: float) -> bool:
    """Whether `additional` bytes on top of the current RSS stay within `memory_budget()`."""
    budget, _ = memory_budget()
    return budget is None or current_rss() + additional <= budget
