"""`pseudo_label`: one training-free segmenter over a whole folder of scans, cached, resumable, sharded.

What `labelfree3d pseudo-label DATA -m METHOD -o OUT` runs, and what the self-training recipes
call to make their pseudo masks (docs/scaling.md). It is a thin layer over the batch engine
(`labelfree3d.batch.engine.run_batch`): this module decides which scans still need work and
records what happened; the engine runs them on dask workers.

Layout of OUT:

* `<scene>.npz`, one per scan, named by its scene name: our prediction format
  (`labelfree3d.io.predictions`) with string members naming the cache key, the input and its
  fingerprint, the method, parameters and package version;
* `manifest.json`: the method, parameters and package version of the latest run, the runs so far,
  and per scan its status ("done" or "failed"), scene, output, mask count, seconds, the output's
  SHA-256, whether the latest run took it from the cache, and the one-line error of a failure.

Cache. A scan's key is SHA-256 of (the content fingerprint of its files, the method, every
parameter of the segmenter with its defaults, the reader, the package version). A scan is
skipped when its output exists under the same key. To avoid reading every input again on a re-run,
the manifest keeps each input file's size and modification time beside its fingerprint: when
they, the configuration and the output's own size and time are unchanged the scan is skipped here
without being sent to a worker; otherwise a worker hashes the files again and compares keys.

Resume. A worker writes its masks completely to `OUT/.pending/` and only then reports back; this
process renames the file into place (atomic on one file system) and then records it in the
manifest (atomically, every `FLUSH_SECONDS` and at the end). A run killed at any moment leaves
either no output for a scan, or a complete output whose key a re-run checks, so no truncated file
is ever taken as done; outputs whose manifest entry was lost are found and skipped by their key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import statistics
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from labelfree3d.batch.engine import ScanResult, run_batch
from labelfree3d.errors import InputError, ParameterError
from labelfree3d.io.scans import ScanSource, companion_files, list_scans

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_FORMAT",
    "PENDING_FOLDER",
    "PseudoLabelJob",
    "ScanRecord",
    "PseudoLabelRun",
    "parse_shard",
    "select_shard",
    "scan_files",
    "file_stats",
    "fingerprint_scan",
    "output_name",
    "label_scan",
    "read_manifest",
    "pseudo_label",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "labelfree3d.pseudo-label/1"
PENDING_FOLDER = ".pending"
# how often finished scans are written to the manifest while a run goes on; a run killed in
# between loses only manifest lines, never outputs (re-runs find those by their key)
FLUSH_SECONDS = 2.0
MAX_RUNS_KEPT = 50
_HASH_CHUNK = 1 << 22


# ---------------------------------------------------------------------- shards
def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`"i/n"` -> (i, n) with 0 <= i < n (None stays None).

    Raises:
        ParameterError: not of the form i/n, n < 1, or i outside [0, n).
    """
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if match is None:
        raise ParameterError(f"--shard expects i/n (e.g. 3/8, shards numbered 0 to n-1), got {text!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        raise ParameterError(f"--shard {text}: need 0 <= i < n (shards are numbered 0 to n-1)")
    return index, count


def select_shard(scans: list[Path], shard: tuple[int, int] | None) -> list[Path]:
    """Shard i of n of the scan list: every n-th scan starting at i (the list's order is kept).

    The same list always gives the same shards, and n shards together hold every scan once.
    """
    if shard is None:
        return list(scans)
    index, count = shard
    return list(scans[index::count])


# ---------------------------------------------------------------------- what a scan is made of
def scan_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files a scan consists of: a file and its label companions, or every file of a scan folder.

    Hidden files and folders (names starting with ".") inside a scan folder are left out.
    """
    path = Path(path)
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    return [path, *companion_files(path)]


def _relative(path: Path, file: Path) -> str:
    base = path if path.is_dir() else path.parent
    return file.relative_to(base).as_posix()


def file_stats(path: str | os.PathLike[str]) -> dict[str, list[int]]:
    """{file name relative to the scan: [size in bytes, modification time in ns]} of `scan_files(path)`."""
    path = Path(path)
    stats = {}
    for file in scan_files(path):
        info = file.stat()
        stats[_relative(path, file)] = [info.st_size, info.st_mtime_ns]
    return stats


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint_scan(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of the names, sizes and contents of `scan_files(path)`: what the cache keys on.

    Raises:
        InputError: a missing scan or a file that cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such scan file or folder", path)
    digest = hashlib.sha256()
    for file in scan_files(path):
        try:
            content = _sha256_file(file)
        except OSError as error:
            raise InputError(f"cannot read ({error.strerror})", file) from error
        digest.update(f"{_relative(path, file)}\0{file.stat().st_size}\0{content}\n".encode())
    return digest.hexdigest()


def output_name(scene_name: str) -> str:
    """`<scene>.npz` with characters that are unsafe in file names replaced by "_"."""
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", scene_name).strip("._") or "scene"
    return f"{safe}.npz"


# ---------------------------------------------------------------------- the job and its worker task
def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class PseudoLabelJob:
    """What every scan of a run is segmented with, and where its output goes.

    Attributes:
        method: registered segmenter name.
        settings: the parameters the user set (what `make_segmenter` is called with).
        parameters: every parameter of the segmenter, defaults included (what the key covers).
        output: the output folder (shared by all workers).
        input_format: reader name, or None to detect each scan's format.
        version: the package version that makes the masks.
        force: recompute even when an output with the same key exists.
        known_outputs: {input path: output file name} from the manifest, so that a worker can
            check an existing output without reading the scan first.
    """

    method: str
    settings: dict[str, Any]
    parameters: dict[str, Any]
    output: Path
    input_format: str | None
    version: str
    force: bool = False
    known_outputs: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> str:
        """SHA-256 (hex) of method, parameters, reader and package version."""
        text = _canonical(
            {"method": self.method, "parameters": self.parameters, "format": self.input_format, "version": self.version}
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def key(self, fingerprint: str) -> str:
        """The cache key of a scan with content `fingerprint` under this job."""
        return hashlib.sha256(f"{self.config}\0{fingerprint}".encode()).hexdigest()


def _cached_output(target: Path, key: str, source: str) -> dict[str, str] | None:
    """The metadata of `target` when it is an output of `source` under `key`, else None."""
    from labelfree3d.io.predictions import read_prediction_metadata

    if not target.is_file():
        return None
    try:
        info = read_prediction_metadata(target)
    except InputError:
        return None
    if info.get("cache_key") != key or info.get("input") != source:
        return None
    return info


def label_scan(path: Path, job: PseudoLabelJob) -> dict[str, Any]:
    """Worker task: segment one scan into `job.output/.pending/`, unless its output is already there.

    Returns:
        A small record: "status" ("computed" or "cached"), "scene", "output" (file name), "masks",
        "points", "seconds" (segmentation alone), "key", "fingerprint", "files"
        (`file_stats`), and for computed scans "pending" (where the finished file waits to be
        renamed into place) and "checksum".
    """
    from labelfree3d.io import read_scene, write_predictions
    from labelfree3d.segment import make_segmenter

    source = str(path)
    files = file_stats(path)
    fingerprint = fingerprint_scan(path)
    key = job.key(fingerprint)
    record: dict[str, Any] = {"key": key, "fingerprint": fingerprint, "files": files}
    known = job.known_outputs.get(source)
    if not job.force and known is not None:
        info = _cached_output(job.output / known, key, source)
        if info is not None:
            return {**record, "status": "cached", "scene": info.get("scene_name"), "output": known, "masks": int(info.get("masks", 0))}
    scene = read_scene(path, format=job.input_format)
    name = output_name(scene.name)
    if not job.force:
        info = _cached_output(job.output / name, key, source)
        if info is not None:
            return {**record, "status": "cached", "scene": scene.name, "output": name, "masks": int(info.get("masks", 0))}
    segmenter = make_segmenter(job.method, **job.settings)
    started = time.perf_counter()
    masks = segmenter.segment(scene)
    seconds = time.perf_counter() - started
    pending = job.output / PENDING_FOLDER / f"{Path(name).stem}.{uuid.uuid4().hex[:12]}.npz"
    metadata = {
        "cache_key": key,
        "input": source,
        "fingerprint": fingerprint,
        "parameters": _canonical(job.parameters),
        "version": job.version,
        "masks": str(len(masks)),
    }
    write_predictions(masks, pending, scene_name=scene.name, method=job.method, metadata=metadata)
    return {
        **record,
        "status": "computed",
        "scene": scene.name,
        "output": name,
        "pending": str(pending),
        "checksum": f"sha256:{_sha256_file(pending)}",
        "masks": len(masks),
        "points": scene.num_points,
        "seconds": seconds,
    }


def _check_worker_version(expected: str) -> None:
    """Worker setup: the worker's labelfree3d must make the same masks as the client's version says."""
    import labelfree3d

    if labelfree3d.__version__ != expected:
        raise ParameterError(
            f"this worker runs labelfree3d {labelfree3d.__version__}, the client {expected}; install one version everywhere"
        )


# ---------------------------------------------------------------------- the manifest
def read_manifest(output: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of an output folder (None when there is none yet).

    Raises:
        InputError: the manifest exists but is not a pseudo-label manifest.
    """
    path = Path(output) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"not a readable manifest ({error}); move it away to start the folder afresh", path) from error
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("scans"), list):
        raise InputError(f"not a labelfree3d pseudo-label manifest (format {MANIFEST_FORMAT} expected)", path)
    return manifest


@contextlib.contextmanager
def _locked(output: Path) -> Iterator[None]:
    """Hold OUT/.manifest.lock so that shards writing one folder update the manifest in turn."""
    try:
        import fcntl
    except ImportError:  # not POSIX: shards must use separate folders there
        yield
        return
    with open(output / ".manifest.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _ManifestWriter:
    """This run's share of the manifest, merged into the file (under the lock) now and then."""

    def __init__(self, output: Path, header: dict[str, Any], run: dict[str, Any]):
        self.output = output
        self.header = header
        self.run = run
        self.entries: dict[str, dict[str, Any]] = {}
        self._dirty = False
        self._flushed = time.monotonic()

    def put(self, entry: dict[str, Any]) -> None:
        self.entries[entry["input"]] = entry
        self._dirty = True
        if time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def flush(self, final: bool = False) -> None:
        from labelfree3d.io.atomic import write_text_atomic

        if not self._dirty and not final:
            return
        with _locked(self.output):
            current = read_manifest(self.output) or {}
            by_input = {entry["input"]: entry for entry in current.get("scans", [])}
            by_input.update(self.entries)
            runs = [r for r in current.get("runs", []) if r.get("id") != self.run["id"]]
            runs.append(self.run)
            manifest = {
                "format": MANIFEST_FORMAT,
                **self.header,
                "updated": _now(),
                "runs": runs[-MAX_RUNS_KEPT:],
                "scans": sorted(by_input.values(), key=lambda e: (e.get("scene") or "", e["input"])),
            }
            write_text_atomic(self.output / MANIFEST_NAME, json.dumps(manifest, indent=1, default=str) + "\n")
        self._dirty = False
        self._flushed = time.monotonic()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------- results
@dataclass
class ScanRecord:
    """What a run did with one scan (also its manifest entry, `as_entry`).

    Attributes:
        input: the scan's path.
        status: "computed", "cached" (output up to date, no work) or "failed".
        scene: scene name (None when the scan could not be read).
        output: the output file in OUT (None when failed).
        masks: mask count.
        seconds: segmentation wall time (0 for cached scans).
        error: one-line reason of a failure.
        entry: the manifest entry written for it.
    """

    input: str
    status: str
    scene: str | None = None
    output: str | None = None
    masks: int = 0
    seconds: float = 0.0
    error: str | None = None
    entry: dict[str, Any] = field(default_factory=dict)


@dataclass
class PseudoLabelRun:
    """One `pseudo_label` call: a record per scan of this run (in list order) and how it ran."""

    output: Path
    method: str
    parameters: dict[str, Any]
    records: list[ScanRecord] = field(default_factory=list)
    workers: int = 0
    threads_per_worker: int | None = None
    seconds: float = 0.0
    shard: tuple[int, int] | None = None

    def _with(self, status: str) -> list[ScanRecord]:
        return [r for r in self.records if r.status == status]

    @property
    def computed(self) -> list[ScanRecord]:
        return self._with("computed")

    @property
    def cached(self) -> list[ScanRecord]:
        return self._with("cached")

    @property
    def failed(self) -> list[ScanRecord]:
        return self._with("failed")

    @property
    def ok(self) -> bool:
        return not self.failed

    def mask_counts(self) -> dict[str, float]:
        """Masks per scan over the scans with an output: mean, min, max (0 when none)."""
        counts = [r.masks for r in self.records if r.status != "failed"]
        if not counts:
            return {"mean": 0.0, "min": 0, "max": 0}
        return {"mean": statistics.fmean(counts), "min": min(counts), "max": max(counts)}


# ---------------------------------------------------------------------- the run
def _resolve_job(
    method: str, settings: Mapping[str, Any] | None, output: Path, input_format: str | None, force: bool
) -> PseudoLabelJob:
    import labelfree3d
    from labelfree3d.segment import make_segmenter

    settings = dict(settings or {})
    segmenter = make_segmenter(method, **settings)  # bad names and values fail before any work
    parameters = json.loads(_canonical(segmenter.get_params()))
    return PseudoLabelJob(method, settings, parameters, output, input_format, labelfree3d.__version__, force)


def _up_to_date(entry: dict[str, Any] | None, job: PseudoLabelJob, path: Path) -> bool:
    """True when the manifest says this scan's output is current: no need to send it to a worker."""
    if job.force or entry is None or entry.get("status") != "done" or entry.get("config") != job.config:
        return False
    output = job.output / str(entry.get("output"))
    try:
        info = output.stat()
        stats = file_stats(path)
    except OSError:
        return False
    return stats == entry.get("files") and [info.st_size, info.st_mtime_ns] == entry.get("output_stat")


def _open_client(scheduler: str) -> Any:
    from distributed import Client

    try:
        client = Client(scheduler, timeout="15s")
    except (OSError, TimeoutError, ValueError) as error:
        raise ParameterError(f"cannot reach the dask scheduler at {scheduler}: {error}") from error
    try:
        client.wait_for_workers(1, timeout=60)
    except TimeoutError as error:
        client.close()
        raise ParameterError(f"the dask scheduler at {scheduler} has no workers (waited 60 s)") from error
    return client


def pseudo_label(
    source: ScanSource,
    method: str,
    output: str | os.PathLike[str],
    settings: Mapping[str, Any] | None = None,
    *,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    shard: tuple[int, int] | str | None = None,
    limit: int | None = None,
    force: bool = False,
    input_format: str | None = None,
    progress: Any = False,
) -> PseudoLabelRun:
    """Segment every scan of `source` with `method` into `output`, skipping scans already done.

    Args:
        source: a folder of scans, a scan, a list file or a pattern (`list_scans`).
        method: registered segmenter name (`labelfree3d methods`).
        output: output folder (created); `<scene>.npz` per scan and `manifest.json`.
        settings: parameter overrides of the method (`--set key=value`).
        workers: worker processes of a local dask cluster (None: one per core; 0 or 1: this
            process). Ignored with `scheduler` / `client`.
        threads_per_worker: thread cap of each scan's numerical libraries (None: cores //
            workers; on an existing cluster, each machine's cores // its worker's threads).
        scheduler: address of a running dask scheduler (`tcp://host:port`); the scans and OUT
            must be reachable under the same paths on every worker.
        client: an existing `distributed.Client` instead of `scheduler`.
        shard: (i, n) or "i/n": run only every n-th scan from the i-th (0 <= i < n).
        limit: run only the first `limit` scans (after sharding).
        force: recompute every scan even when its output is up to date.
        input_format: reader name for every scan (None: detected per scan).
        progress: a progress bar on stderr (True) or on a given `rich.console.Console`.

    Returns:
        `PseudoLabelRun`; failed scans are in it with their one-line errors (nothing raises
        for a single scan).

    Raises:
        ParameterError: an unknown method or bad setting, a bad shard or limit, an unreachable
            scheduler. InputError: no scans, an output path that is a file, a foreign manifest.
    """
    started = time.perf_counter()
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise InputError("the output must be a folder", output)
    if limit is not None and int(limit) < 1:
        raise ParameterError(f"--limit must be >= 1, got {limit}")
    shard = parse_shard(shard) if isinstance(shard, str) else shard
    job = _resolve_job(method, settings, output, input_format, force)
    # absolute paths: they identify a scan in the manifest whatever the working directory, and
    # are what workers on other machines open (shared storage under the same mount point)
    scans = select_shard([Path(os.path.abspath(p)) for p in list_scans(source, format=input_format)], shard)
    if limit is not None:
        scans = scans[: int(limit)]
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create the output folder ({error.strerror})", output) from error
    previous = read_manifest(output) or {"scans": []}
    by_input = {entry.get("input"): entry for entry in previous["scans"] if isinstance(entry, dict)}
    if shard is None:  # no other writer expected: files left by a killed run can go
        for stale in (output / PENDING_FOLDER).glob("*.npz"):
            stale.unlink(missing_ok=True)

    run = PseudoLabelRun(output, method, job.parameters, shard=shard)
    run_info = {
        "id": uuid.uuid4().hex,
        "started": _now(),
        "scans": len(scans),
        "shard": None if shard is None else f"{shard[0]}/{shard[1]}",
        "scheduler": scheduler,
    }
    header = {"method": method, "parameters": job.parameters, "settings": job.settings, "version": job.version, "input_format": input_format}
    writer = _ManifestWriter(output, header, run_info)
    records: dict[int, ScanRecord] = {}

    to_run: list[Path] = []
    for index, path in enumerate(scans):
        entry = by_input.get(str(path))
        if _up_to_date(entry, job, path):
            cached = {**entry, "cached": True, "checked": _now()}
            records[index] = ScanRecord(str(path), "cached", entry.get("scene"), entry.get("output"), int(entry.get("masks", 0)), entry=cached)
            writer.put(cached)
        else:
            to_run.append(path)
    positions = {str(path): index for index, path in enumerate(scans)}
    claimed = {r.scene: r.input for r in records.values() if r.scene}
    known = {
        source: entry["output"] for source, entry in by_input.items() if entry.get("status") == "done" and entry.get("output")
    }
    job = dataclasses.replace(job, known_outputs=known)

    def on_result(result: ScanResult) -> None:
        record = _record_result(result, job, claimed, by_input)
        records[positions[record.input]] = record
        writer.put(record.entry)

    if to_run:
        opened = _open_client(scheduler) if scheduler is not None and client is None else None
        try:
            batch = run_batch(
                functools.partial(label_scan, job=job), to_run, workers=workers, threads_per_worker=threads_per_worker,
                setup=functools.partial(_check_worker_version, job.version), progress=progress,
                description=f"{method}", on_result=on_result, client=client or opened,
            )  # fmt: skip
        finally:
            if opened is not None:
                opened.close()
        run.workers, run.threads_per_worker = batch.workers, batch.threads_per_worker
    run.records = [records[i] for i in sorted(records)]
    run.seconds = time.perf_counter() - started
    run_info.update(
        finished=_now(), seconds=round(run.seconds, 3), computed=len(run.computed), cached=len(run.cached),
        failed=len(run.failed), workers=run.workers, threads_per_worker=run.threads_per_worker,
    )  # fmt: skip
    writer.flush(final=True)
    with contextlib.suppress(OSError):
        (output / PENDING_FOLDER).rmdir()  # only when empty
    return run


def _record_result(
    result: ScanResult, job: PseudoLabelJob, claimed: dict[str, str], by_input: dict[str, dict[str, Any]]
) -> ScanRecord:
    """Turn a worker's result into a record: rename a computed file into place, or record the failure."""
    source = str(result.path)
    base = {"input": source, "config": job.config, "finished": _now(), "worker": result.worker}
    if not result.ok:
        entry = {**base, "status": "failed", "scene": None, "error": result.error, "error_type": result.error_type}
        entry["seconds"] = round(result.seconds, 3)
        return ScanRecord(source, "failed", error=result.error, seconds=result.seconds, entry=entry)
    value = result.value
    scene, name = value["scene"], value["output"]
    other = claimed.get(scene) if scene else None
    if other is None and scene:
        other = next(
            (s for s, e in by_input.items() if s != source and e.get("status") == "done" and e.get("output") == name and Path(s).exists()),
            None,
        )
    if other is not None and other != source:
        if value.get("pending"):
            Path(value["pending"]).unlink(missing_ok=True)
        error = f"{source}: its scene name {scene!r} is also the name of {other}; outputs are named by scene, use separate output folders"
        entry = {**base, "status": "failed", "scene": scene, "error": error, "error_type": "InputError"}
        return ScanRecord(source, "failed", scene, error=error, entry=entry)
    claimed[scene] = source
    target = job.output / name
    if value["status"] == "computed":
        os.replace(value["pending"], target)
    info = target.stat()
    entry = {
        **base,
        "status": "done",
        "cached": value["status"] == "cached",
        "scene": scene,
        "output": name,
        "masks": int(value["masks"]),
        "points": value.get("points", by_input.get(source, {}).get("points")),
        "seconds": round(float(value.get("seconds", by_input.get(source, {}).get("seconds", 0.0)) or 0.0), 3),
        "checksum": value.get("checksum") or by_input.get(source, {}).get("checksum") or f"sha256:{_sha256_file(target)}",
        "key": value["key"],
        "fingerprint": value["fingerprint"],
        "files": value["files"],
        "output_stat": [info.st_size, info.st_mtime_ns],
    }
    seconds = float(value.get("seconds", 0.0)) if value["status"] == "computed" else 0.0
    return ScanRecord(source, value["status"], scene, name, int(value["masks"]), seconds, entry=entry)
