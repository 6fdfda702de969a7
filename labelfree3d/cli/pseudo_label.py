"""`labelfree3d pseudo-label DATA -m METHOD -o OUT`: a segmenter over a folder of scans, cached and resumable."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from labelfree3d.cli.common import console, exit_if_failed, parse_settings


def register(app: typer.Typer) -> None:
    @app.command("pseudo-label")
    def pseudo_label(
        data: Path = typer.Argument(..., help="Folder of scans (files, scene folders, mixed), a scan, or a text file listing paths."),
        method: str = typer.Option(..., "--method", "-m", help="Registered method (see `labelfree3d methods`)."),
        output: Path = typer.Option(..., "--output", "-o", help="Output folder: <scene>.npz per scan and manifest.json."),
        settings: list[str] = typer.Option(None, "--set", help="Method parameter key=value (repeatable)."),
        workers: int = typer.Option(None, "--workers", help="Worker processes of a local dask cluster (default: one per core; 1: this process)."),
        threads_per_worker: int = typer.Option(
            None, "--threads-per-worker", help="Thread cap per scan for BLAS/OpenMP/numba/torch (default: cores // workers)."
        ),
        scheduler: str = typer.Option(None, "--scheduler", help="Run on an existing dask cluster, e.g. tcp://host:8786 (docs/scaling.md)."),
        shard: str = typer.Option(None, "--shard", help="i/n: only every n-th scan from the i-th (0 <= i < n), for array jobs."),
        limit: int = typer.Option(None, "--limit", help="Only the first N scans (after --shard)."),
        force: bool = typer.Option(False, "--force", help="Recompute every scan, even when its output is up to date."),
        input_format: str = typer.Option(None, "--format", help="Reader name for every scan; detected per scan when omitted."),
    ) -> None:
        """Pseudo masks for every scan of a folder: one .npz per scene plus manifest.json; re-runs skip finished scans."""
        from labelfree3d.batch.pseudo_label import pseudo_label as run_pseudo_label

        run = run_pseudo_label(
            data, method, output, parse_settings(settings), workers=workers, threads_per_worker=threads_per_worker,
            scheduler=scheduler, shard=shard, limit=limit, force=force, input_format=input_format, progress=console.error,
        )  # fmt: skip
        total = len(run.records)
        if total and len(run.cached) == total:
            console.print(f"all {total} scans are up to date in {output} (cached): no segmentation was run", soft_wrap=True)
        counts = run.mask_counts()
        table = Table(title=f"pseudo-label {method} -> {output}")
        for column in ("scans", "computed", "cached", "failed", "masks/scan", "seconds", "workers"):
            table.add_column(column, justify="right")
        where = "this process" if run.workers == 0 else f"{run.workers} x {run.threads_per_worker or '-'} thr"
        if scheduler:
            where = f"{run.workers} on {scheduler}"
        table.add_row(
            str(total), str(len(run.computed)), str(len(run.cached)), str(len(run.failed)),
            f"{counts['mean']:.1f} [{counts['min']}, {counts['max']}]", f"{run.seconds:.1f}", where,
        )  # fmt: skip
        console.print(table)
        header = f"{len(run.failed)} scan(s) failed (recorded in {output / 'manifest.json'}):"
        exit_if_failed([record.error for record in run.failed], header)
