"""Folder-level work: one engine that runs a per-scan task over many scans (docs/batch.md).

* `list_scans` (from `labelfree3d.io.scans`): which scans a path, folder or list names;
* `run_batch`: run `task(path)` on each of them in worker processes (dask.distributed) or in
  this process, capping each worker's threads and recording failures with one-line errors;
* `labelfree3d.batch.benchmark.run_benchmark`: segmenters x scans, evaluated against the
  scans' ground truth (what `labelfree3d benchmark` runs); import it from there, it loads
  every segmentation method.
"""

from labelfree3d.batch.engine import (
    THREAD_ENV_VARS,
    BatchRun,
    ScanResult,
    available_cores,
    one_line_error,
    resolve_workers,
    run_batch,
    thread_limits,
)
from labelfree3d.io.scans import is_scan, list_scans

__all__ = [
    "list_scans",
    "is_scan",
    "run_batch",
    "BatchRun",
    "ScanResult",
    "available_cores",
    "resolve_workers",
    "thread_limits",
    "one_line_error",
    "THREAD_ENV_VARS",
]
