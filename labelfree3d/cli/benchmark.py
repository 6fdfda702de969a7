"""`labelfree3d benchmark DATA -o report.html`: every method on every scan, one HTML report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.table import Table

from labelfree3d.cli.common import console, parse_settings, state


def _seconds(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.2f}"


def register(app: typer.Typer) -> None:
    @app.command()
    def benchmark(
        data: Path = typer.Argument(..., help="Folder of scans (any format `labelfree3d formats` lists), one scan, or a .txt list of scan paths."),
        methods: str = typer.Option(None, "--methods", "-m", help="Comma-separated methods (default: every registered one; see `labelfree3d methods`)."),
        settings: list[str] = typer.Option(
            None, "--set", help="METHOD.KEY=VALUE for one method; KEY=VALUE for every selected method (each must have KEY). Repeatable."
        ),
        output: Path = typer.Option(Path("benchmark.html"), "--output", "-o", help="HTML report to write; the metrics go to the same name with .json."),
        workers: int = typer.Option(None, "--workers", "-j", help="Worker processes (default: one per core; 0 or 1: in this process)."),
        threads: int = typer.Option(None, "--threads-per-worker", help="Threads each worker's numerical libraries may use (default: cores / workers)."),
        scan_format: str = typer.Option(None, "--format", help="Reader name for the scans; detected per scan when omitted."),
        void_labels: str = typer.Option(None, "--void-labels", help="Comma-separated categories treated as void, e.g. wall,floor,ceiling (default: the reader's)."),
        min_region_size: int = typer.Option(100, "--min-region-size", help="GT instances / masks under this many points are ignored / dropped."),
        thumbnails: int = typer.Option(8, "--thumbnails", help="Top-view renders of GT and every method for this many scans (0: none)."),
        as_json: bool = typer.Option(False, "--json", help="Print the metrics JSON to stdout instead of the table."),
    ) -> None:
        """Run segmenters on every scan of DATA, evaluate them against its ground truth, write one HTML report.

        AP / AP50 / AP25 pooled over the scans (ScanNet's class-agnostic protocol), masks and
        seconds per scene and failures per method; precision-recall curves, AP per scene and
        top-view renders in the report. A method that fails on a scan is listed and scored as
        predicting nothing there.
        """
        from labelfree3d.batch.benchmark import format_percent, run_benchmark
        from labelfree3d.errors import ParameterError
        from labelfree3d.io import write_text_atomic
        from labelfree3d.viz.report import write_benchmark_report

        if output.suffix.lower() == ".json":
            raise ParameterError("-o names the HTML report (the metrics are written beside it as .json)")

        labels = [v.strip() for v in void_labels.split(",") if v.strip()] if void_labels else None
        result = run_benchmark(
            data, methods, parse_settings(settings), workers=workers, threads_per_worker=threads, format=scan_format,
            void_labels=labels, min_region_size=min_region_size, thumbnails=thumbnails, progress=console.error,
        )  # fmt: skip
        written = write_benchmark_report(result, output)
        metrics = result.to_json()
        json_path = output.with_suffix(".json")
        write_text_atomic(json_path, json.dumps(metrics, indent=1) + "\n")

        if as_json:
            console.json(metrics)
        else:
            table = Table(title=f"benchmark: {len(result.scenes)} scene(s) of {data}", caption="AP columns in %, pooled over the scenes")
            for column in ("method", "AP", "AP50", "AP25", "masks/scene", "s/scene", "failures"):
                table.add_column(column, justify="left" if column == "method" else "right")
            for method, entry in result.methods.items():
                row = entry.summary()
                masks = "-" if not math.isfinite(row["masks_per_scene"]) else f"{row['masks_per_scene']:.1f}"
                table.add_row(
                    method, format_percent(row["ap"]), format_percent(row["ap50"]), format_percent(row["ap25"]),
                    masks, _seconds(row["seconds_per_scene"]), str(row["failures"]),
                )  # fmt: skip
            console.print(table)
            console.print(f"wrote {written.path} ({written.size_bytes / 1e6:.1f} MB) and {json_path}", soft_wrap=True, markup=False)
        for method, entry in result.methods.items():
            for scene, error in list(entry.failures.items())[:5]:
                console.err(f"note: {method} failed on {scene}: {error}")
                if state.debug:
                    console.err(entry.tracebacks.get(scene, ""))
            if len(entry.failures) > 5:
                console.err(f"note: {method} failed on {len(entry.failures) - 5} more scene(s); see the report")
        if result.unreadable:
            errors = list(result.unreadable.values())
            console.err(f"note: {len(errors)} scan(s) not evaluated: {errors[0]}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
        if result.without_gt:
            console.err(
                f"note: {len(result.without_gt)} scan(s) carry no ground truth and were skipped: {', '.join(result.without_gt[:3])}"
                + (" ..." if len(result.without_gt) > 3 else "")
            )
