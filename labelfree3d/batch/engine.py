"""`run_batch`: one function run on every scan of a list, in worker processes, failures recorded.

The engine knows nothing about what the task does: `task(path)` reads its own scan from the
path and returns a small result (metrics, counts, timings, `InstanceMasks`, a thumbnail),
never the scan's point arrays. Scans are spread over a `dask.distributed` `LocalCluster` of
worker processes (one scan at a time per worker), or run one after another in this process
when `workers` is 0 or 1 (tests, debugging, profiling).

Each worker caps the threads of the numerical libraries a scan uses (BLAS / OpenMP through
threadpoolctl and the `*_NUM_THREADS` variables, torch, numba) to `threads_per_worker`, so that
workers x threads does not oversubscribe the cores. A task that raises is recorded as a failed
`ScanResult` with a one-line error naming the scan; the other scans go on.

Later layers (caching and resuming, sharding over machines, `pseudo-label`) build on the same
call: they filter the scan list before it and consume `on_result` as results arrive.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelfree3d.errors import InputError, LabelFree3DError, ParameterError

__all__ = [
    "ScanResult",
    "BatchRun",
    "run_batch",
    "available_cores",
    "resolve_workers",
    "thread_limits",
    "one_line_error",
    "THREAD_ENV_VARS",
]

# read by OpenMP, OpenBLAS, MKL, BLIS, Accelerate and numba when they load: set in each worker
# before anything is imported, so libraries first loaded inside a task are capped too
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)
IN_PROCESS = "in-process"
# thread cap of a scan on a worker of an existing cluster: that machine's cores shared out between
# the worker's threads, found out on the worker itself (its machine may differ from this one)
SHARE_WORKER_CORES = -1


@dataclass
class ScanResult:
    """What the task did with one scan.

    Attributes:
        index: position of the scan in the list given to `run_batch`.
        path: the scan.
        value: what the task returned (None when it failed).
        error: one line saying why it failed ("<file>: <problem>"), None on success.
        error_type: the exception's class name ("FormatError", "KilledWorker", ...).
        traceback: the full traceback of the failure (for `--debug`).
        seconds: wall time of the task in its worker (reading included).
        worker: "in-process" or "pid <N>" of the worker process that ran it.
    """

    index: int
    path: Path
    value: Any = None
    error: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    seconds: float = 0.0
    worker: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class BatchRun:
    """Every scan's `ScanResult` (in the order given) and how the batch ran.

    Attributes:
        results: one per scan, in input order.
        workers: worker processes used (0: in this process).
        threads_per_worker: thread cap of each scan's numerical libraries (None: not capped).
        seconds: wall time of the whole batch (cluster start-up included).
    """

    results: list[ScanResult] = field(default_factory=list)
    workers: int = 0
    threads_per_worker: int | None = None
    seconds: float = 0.0

    @property
    def succeeded(self) -> list[ScanResult]:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list[ScanResult]:
        return [r for r in self.results if not r.ok]

    def values(self) -> list[Any]:
        """The values of the scans that succeeded, in input order."""
        return [r.value for r in self.results if r.ok]


# ---------------------------------------------------------------------- resources
def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None, threads_per_worker: int | None, num_scans: int) -> tuple[int, int | None]:
    """(worker processes, threads per worker) for a batch of `num_scans` scans.

    `workers` None: one per core, at most one per scan; 0 or 1 run in this process (returned as
    0). `threads_per_worker` None: the cores shared out between the workers (at least 1), or
    no cap when running in this process.

    Raises:
        ParameterError: negative workers or threads below 1.
    """
    if workers is not None and int(workers) < 0:
        raise ParameterError(f"workers must be >= 0, got {workers}")
    if threads_per_worker is not None and int(threads_per_worker) < 1:
        raise ParameterError(f"threads_per_worker must be >= 1, got {threads_per_worker}")
    cores = available_cores()
    count = cores if workers is None else int(workers)
    count = min(count, max(num_scans, 1))
    if count <= 1:
        return 0, None if threads_per_worker is None else int(threads_per_worker)
    threads = max(1, cores // count) if threads_per_worker is None else int(threads_per_worker)
    return count, threads


@contextlib.contextmanager
def thread_limits(threads: int | None) -> Iterator[None]:
    """Cap BLAS / OpenMP (threadpoolctl), torch and numba to `threads` inside the block (None: no cap).

    torch, and BLAS / OpenMP libraries loaded later, are capped only when already imported (a
    worker process also sets the `*_NUM_THREADS` variables at start, which caps them when a
    task imports them later). The previous limits are restored afterwards.
    """
    if threads is None:
        yield
        return
    import numba  # a project dependency: loaded now so that its thread pool is capped from the start
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    torch_before = torch.get_num_threads() if torch is not None else None
    numba_before = numba.get_num_threads()
    with threadpool_limits(limits=threads):
        if torch is not None:
            torch.set_num_threads(threads)
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        try:
            yield
        finally:
            if torch is not None and torch_before is not None:
                torch.set_num_threads(torch_before)
            numba.set_num_threads(numba_before)


# ---------------------------------------------------------------------- errors
def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def one_line_error(error: BaseException, path: str | os.PathLike[str] | None = None) -> str:
    """A single line for a failure on `path`: the project's own message, or "<path>: <Type>: <message>".

    `LabelFree3DError` messages are one line and an `InputError` already names its file; other
    exceptions (a method's bug, numpy complaining) get the scan's path and their class name.
    """
    if isinstance(error, InputError) and error.path is not None:
        return _first_line(str(error))
    if isinstance(error, LabelFree3DError):
        message = _first_line(str(error)) or type(error).__name__
    else:
        detail = _first_line(str(error))
        message = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    return f"{path}: {message}" if path is not None else message


# ---------------------------------------------------------------------- running one scan
# per worker process: setup tokens already run, with the exception each one raised (or None)
_SETUP_DONE: dict[str, BaseException | None] = {}


def _setup_once(setup: Callable[[], Any], token: str) -> None:
    if token not in _SETUP_DONE:
        try:
            setup()
        except Exception as error:  # every scan of this worker then fails with it
            _SETUP_DONE[token] = error
        else:
            _SETUP_DONE[token] = None
    failure = _SETUP_DONE[token]
    if failure is not None:
        raise failure


def _worker_core_share() -> int | None:
    """Cores of this machine // threads of the dask worker running here (None outside a worker)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    state = getattr(worker, "state", None)
    nthreads = getattr(state, "nthreads", None) or getattr(worker, "nthreads", None) or 1
    return max(1, available_cores() // max(1, int(nthreads)))


def _where() -> str:
    return f"pid {os.getpid()}"


def _execute(
    task: Callable[[Path], Any],
    index: int,
    path: Path,
    threads: int | None,
    setup: Callable[[], Any] | None,
    token: str,
    worker: str | None = None,
) -> ScanResult:
    """Run `task(path)` under the thread cap; any exception becomes a failed `ScanResult`."""
    started = time.perf_counter()
    if threads == SHARE_WORKER_CORES:
        threads = _worker_core_share()
    try:
        with thread_limits(threads):
            if setup is not None:
                _setup_once(setup, token)
            value = task(path)
    except Exception as error:
        return ScanResult(
            index, path, None, one_line_error(error, path), type(error).__name__, traceback.format_exc(),
            time.perf_counter() - started, worker or _where(),
        )  # fmt: skip
    return ScanResult(index, path, value, seconds=time.perf_counter() - started, worker=worker or _where())


# ---------------------------------------------------------------------- progress
class _Progress:
    """A rich progress bar (scans done, scans/s, ETA, failures) or nothing."""

    def __init__(self, progress: Any, description: str, total: int):
        self._bar = None
        self.failed = 0
        self.description = description
        if not progress:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class RateColumn(ProgressColumn):
            def render(self, task: Any) -> Text:
                speed = task.finished_speed or task.speed
                return Text("– scans/s" if speed is None else f"{speed:.2f} scans/s", style="progress.data.speed")

        console = progress if isinstance(progress, Console) else Console(stderr=True)
        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[failed]}"),
            console=console, transient=True, speed_estimate_period=300,
        )  # fmt: skip
        self._task = self._bar.add_task(description, total=total, failed="")

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def advance(self, result: ScanResult) -> None:
        if not result.ok:
            self.failed += 1
        if self._bar is not None:
            failed = f"{self.failed} failed" if self.failed else ""
            self._bar.update(self._task, advance=1, failed=failed)


# ---------------------------------------------------------------------- the batch
def _worker_failure(index: int, path: Path, error: BaseException) -> ScanResult:
    name = type(error).__name__
    if name == "KilledWorker":
        message = f"{path}: the worker process died on this scan (out of memory, or a crash in native code)"
    else:
        message = one_line_error(error, path)
    return ScanResult(index, path, None, message, name, "".join(traceback.format_exception(error)))


def run_batch(
    task: Callable[[Path], Any],
    scans: Sequence[str | os.PathLike[str]],
    *,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    setup: Callable[[], Any] | None = None,
    progress: Any = False,
    description: str = "scans",
    on_result: Callable[[ScanResult], None] | None = None,
    client: Any = None,
) -> BatchRun:
    """Run `task(path)` on every scan; a failing scan is recorded and the others go on.

    Args:
        task: a picklable callable (a module-level function, or `functools.partial` of one)
            that reads its scan from the path and returns a small result.
        scans: scan paths (e.g. from `labelfree3d.io.scans.list_scans`).
        workers: worker processes (None: one per core, at most one per scan; 0 or 1: run in
            this process, one scan after another).
        threads_per_worker: thread cap for each scan's BLAS / OpenMP / torch / numba (None:
            cores // workers; no cap in this process).
        setup: called once per worker process before its first scan (e.g. a warm-up that
            compiles numba code, loading a model); if it raises, that worker's scans fail
            with its error.
        progress: False, True (a bar on stderr) or a `rich.console.Console` to draw it on.
        description: the bar's label.
        on_result: called in this process with each `ScanResult` as it arrives (completion
            order), e.g. to write results incrementally.
        client: an existing `distributed.Client` to run on instead of a local cluster; then
            `workers` is ignored and, unless `threads_per_worker` is given, each scan is capped
            to its own machine's cores // the threads of the worker running it.

    Returns:
        `BatchRun` with one `ScanResult` per scan, in the order of `scans`.

    Raises:
        ParameterError: invalid `workers` or `threads_per_worker`.
    """
    paths = [Path(p) for p in scans]
    count, threads = resolve_workers(workers, threads_per_worker, len(paths))
    if client is not None and threads_per_worker is None:
        threads = SHARE_WORKER_CORES
    token = uuid.uuid4().hex
    started = time.perf_counter()
    results: list[ScanResult | None] = [None] * len(paths)

    def collect(result: ScanResult, bar: _Progress) -> None:
        results[result.index] = result
        bar.advance(result)
        if on_result is not None:
            on_result(result)

    with _Progress(progress, description, len(paths)) as bar:
        if paths and count == 0 and client is None:
            for index, path in enumerate(paths):
                collect(_execute(task, index, path, threads, setup, token, IN_PROCESS), bar)
        elif paths:
            with _dask_client(client, count, threads) as dask_client:
                _run_on_dask(dask_client, task, paths, threads, setup, token, lambda r: collect(r, bar))
    if client is not None:
        count = len(client.scheduler_info().get("workers", {}))
    run = BatchRun([r for r in results if r is not None], count, None if threads == SHARE_WORKER_CORES else threads)
    run.seconds = time.perf_counter() - started
    return run


def _run_on_dask(
    client: Any,
    task: Callable[[Path], Any],
    paths: list[Path],
    threads: int | None,
    setup: Callable[[], Any] | None,
    token: str,
    collect: Callable[[ScanResult], None],
) -> None:
    from distributed import as_completed

    futures = {}
    for index, path in enumerate(paths):
        future = client.submit(
            _execute, task, index, path, threads, setup, token, pure=False, key=f"scan-{index}-{token}"
        )
        futures[future] = index
    for future in as_completed(futures):
        index = futures[future]
        try:
            result = future.result()
        except Exception as error:  # the worker died (KilledWorker) or the result did not come back
            result = _worker_failure(index, paths[index], error)
        future.release()
        collect(result)


@contextlib.contextmanager
def _dask_client(client: Any, workers: int, threads: int | None) -> Iterator[Any]:
    if client is not None:
        yield client
        return
    import dask
    from distributed import Client, LocalCluster

    env = {name: str(threads) for name in THREAD_ENV_VARS} if threads is not None else {}
    config = {
        # a scan that kills its worker is a failed scan, not retried on every other worker
        "distributed.scheduler.allowed-failures": 0,
        # tasks may start processes of their own (joblib / loky inside scikit-learn)
        "distributed.worker.daemon": False,
        "distributed.admin.system-monitor.gil.enabled": False,
    }
    with dask.config.set(config):
        # dashboard on a free port: None still binds dask's default 8787 and warns when another
        # cluster on the machine holds it
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
            silence_logs=logging.ERROR, memory_limit=0, env=env,
        )  # fmt: skip
        try:
            with Client(cluster) as local_client:
                yield local_client
        finally:
            cluster.close()
