"""The one place that imports `spconv` and makes its CPU build usable for training.

spconv 2.x (a pip wheel, no MinkowskiEngine build) runs sparse convolutions on CPU, but several
of its backward kernels ask torch for the current CUDA stream (`torch.cuda.current_stream()`)
before dispatching, which raises "Torch not compiled with CUDA enabled" on a CPU-only torch and
needlessly initialises CUDA on a GPU machine that trains on CPU. Its CPU kernels ignore the stream
handle, so a handle of 0 (the default stream) is correct for them. `import_spconv()` installs a
replacement that returns the real stream when CUDA is usable and 0 otherwise; CUDA behaviour is
therefore unchanged.

Its CPU scatter-add (`SpconvOps.scatter_add_cpu`, the last step of every CPU sparse convolution
and of its backward pass) is also wrong with more than one OpenMP thread: the kernel's row
pointers are shared between threads, so rows are added to the wrong outputs. With torch's default
of one thread per core, every CPU forward pass gave different, wrong features (measured: stem
outputs off by 0.3 between two identical calls on 2 threads; identical on 1 thread).
`import_spconv()` replaces it, for spconv's Python ops, with torch's `index_add_` on the same
memory: exact with any number of threads. CUDA kernels are not touched.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any

from labelfree3d.errors import DependencyError

__all__ = ["import_spconv", "current_stream_handle", "SPCONV_MODULES_WITH_STREAMS"]

# modules that bind `get_current_stream` by name at import time (`from ... import`), so each
# needs its own reference replaced; found with `grep -rn get_current_stream spconv/pytorch`
SPCONV_MODULES_WITH_STREAMS = ("spconv.pytorch.cppcore", "spconv.pytorch.ops", "spconv.pytorch.hash")

_installed = False


def current_stream_handle() -> int:
    """CUDA stream handle for spconv kernels: torch's current stream with CUDA, else 0."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.current_stream().cuda_stream
    # no CUDA context: every tensor is on the CPU and spconv's CPU kernels ignore the stream
    return 0


def import_spconv() -> Any:
    """Import `spconv.pytorch` with the CPU-backward shim installed; returns the module.

    Raises:
        DependencyError: spconv is not installed (pip install spconv, or spconv-cu12x on CUDA).
    """
    global _installed
    try:
        with warnings.catch_warnings():
            # spconv's import triggers torch.fx deprecation chatter that says nothing to users
            warnings.simplefilter("ignore")
            spconv_pytorch = importlib.import_module("spconv.pytorch")
    except ImportError as error:  # pragma: no cover - spconv is a hard dependency
        raise DependencyError(
            f"the sparse-voxel backbone needs spconv ({error}); install 'spconv' (CPU) or 'spconv-cu12x' (CUDA)"
        ) from error
    if not _installed:
        for name in SPCONV_MODULES_WITH_STREAMS:
            module: ModuleType = importlib.import_module(name)
            if hasattr(module, "get_current_stream"):
                module.get_current_stream = current_stream_handle  # type: ignore[attr-defined]
        ops = importlib.import_module("spconv.pytorch.ops")
        ops.SpconvOps = _SpconvOpsWithExactScatter(ops.SpconvOps)  # type: ignore[attr-defined]
        _consume_fx_tracing_notice()
        _installed = True
    return spconv_pytorch


def scatter_add_rows(out: Any, rows: Any, indices: Any) -> None:
    """out[indices[i]] += rows[i] for i < len(indices), in place (spconv's CPU scatter-add, thread safe).

    Args:
        out: (M, C) cumm tensor on the CPU, updated in place.
        rows: (>= K, C) cumm tensor; its first K rows are added.
        indices: (K,) int32 cumm tensor of rows of `out`.
    """
    import torch

    index = torch.from_numpy(indices.numpy_view()).long()
    target = torch.from_numpy(out.numpy_view())
    target.index_add_(0, index, torch.from_numpy(rows.numpy_view())[: index.shape[0]])


class _SpconvOpsWithExactScatter:
    """spconv's `SpconvOps` with `scatter_add_cpu` replaced by `scatter_add_rows`; the rest delegated."""

    def __init__(self, original: Any):
        self._original = original

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)

    @staticmethod
    def scatter_add_cpu(out: Any, rows: Any, indices: Any) -> None:
        scatter_add_rows(out, rows, indices)


def _consume_fx_tracing_notice() -> None:
    """Use up torch's once-per-process "is_fx_tracing will return true ..." log line now, quietly.

    torch 2.13 logs it at WARNING the first time anything asks whether fx is tracing (attention
    modules do on their first forward); it is advice to torch developers and says nothing to users.
    """
    import logging

    from torch.fx import _symbolic_trace

    notice = getattr(_symbolic_trace, "is_fx_tracing_warning", None)
    if notice is None:  # another torch version: nothing to consume
        return
    logger = logging.getLogger(_symbolic_trace.__name__)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        notice()
    finally:
        logger.setLevel(level)
