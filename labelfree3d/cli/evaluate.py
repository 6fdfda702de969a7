"""`labelfree3d evaluate PRED GT`: class-agnostic ScanNet AP, PQ and friends."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from labelfree3d.cli.common import console


def _percent(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100.0 * value:.1f}"


def _print_report(report: dict[str, Any], per_scene: bool) -> None:
    counts = report["counts"]
    summary = Table(title="class-agnostic evaluation (%)", caption=f"{counts['scenes']} scene(s)")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for key, label in (
        ("ap", "AP (0.50:0.90)"),
        ("ap50", "AP50"),
        ("ap25", "AP25"),
        ("pq", "PQ"),
        ("sq", "SQ"),
        ("rq", "RQ"),
    ):
        if key in report:
            summary.add_row(label, _percent(report[key]))
    if "hungarian" in report:
        hungarian = report["hungarian"]
        summary.add_row("Hungarian mean IoU", _percent(hungarian["mean_iou"]))
        summary.add_row("Hungarian precision@0.5", _percent(hungarian["precision"]))
        summary.add_row("Hungarian recall@0.5", _percent(hungarian["recall"]))
    if "ari" in report:
        summary.add_row("ARI (non-void points)", _percent(report["ari"]))
    console.print(summary)

    sizes = Table(title="by GT size (points)")
    for column in ("bucket", "range", "GT", "AP", "AP50", "AP25"):
        sizes.add_column(column, justify="left" if column in ("bucket", "range") else "right")
    for name, entry in report["per_size"].items():
        low, high = entry["range"]
        span = f"[{low:g}, {'inf' if high is None else f'{high:g}'})"
        sizes.add_row(
            name,
            span,
            str(entry["gt_instances"]),
            _percent(entry["ap"]),
            _percent(entry["ap50"]),
            _percent(entry["ap25"]),
        )
    console.print(sizes)

    if len(report["per_dataset"]) > 1:
        datasets = Table(title="by dataset")
        for column in ("dataset", "scenes", "AP", "AP50", "AP25", "PQ"):
            datasets.add_column(column, justify="left" if column == "dataset" else "right")
        for name, entry in report["per_dataset"].items():
            datasets.add_row(
                name, str(entry["scenes"]), *(_percent(entry.get(k)) for k in ("ap", "ap50", "ap25", "pq"))
            )
        console.print(datasets)

    if per_scene:
        scenes = Table(title="by scene")
        for column in ("scene", "GT", "pred", "AP", "AP50", "AP25", "PQ", "ARI"):
            scenes.add_column(column, justify="left" if column == "scene" else "right")
        for name, entry in report["per_scene"].items():
            scenes.add_row(
                name,
                str(entry["gt_instances"]),
                str(entry["predictions"]),
                *(_percent(entry.get(k)) for k in ("ap", "ap50", "ap25", "pq", "ari")),
            )
        console.print(scenes)

    console.print(
        f"{counts['gt_instances']} GT instances counted, {counts['gt_ignored_small']} under "
        f"{report['protocol']['min_region_size']} points ignored; {counts['predictions']} predictions, "
        f"{counts['predictions_dropped_small']} dropped as too small"
    )
    if report.get("skipped_gt_scenes"):
        skipped = report["skipped_gt_scenes"]
        console.err(
            f"note: {len(skipped)} ground-truth scene(s) without predictions were not evaluated: {', '.join(skipped[:5])}"
        )


def register(app: typer.Typer) -> None:
    @app.command()
    def evaluate(
        predictions: Path = typer.Argument(
            ..., help="Our .npz predictions, a folder of them, or a ScanNet benchmark prediction folder."
        ),
        ground_truth: Path = typer.Argument(
            ...,
            help="Scan with instances (ScanNet folder, Mask3D npy, OSD pcd, S3DIS room, ScanNet benchmark GT .txt, ...) "
            "or a folder of them.",
        ),
        as_json: bool = typer.Option(
            False, "--json", help="Print the full report as JSON (fractions in [0, 1], null = undefined)."
        ),
        void_labels: str = typer.Option(
            None,
            "--void-labels",
            help="Comma-separated categories treated as void, e.g. wall,floor,ceiling (default: the reader's).",
        ),
        gt_format: str = typer.Option(
            None,
            "--gt-format",
            help="Reader name for GT (scannet_gt_txt: ScanNet's benchmark GT .txt); detected when omitted.",
        ),
        min_region_size: int = typer.Option(
            100, "--min-region-size", help="GT instances / masks under this many points are ignored / dropped."
        ),
        per_scene: bool = typer.Option(False, "--per-scene", help="Also print one table row per scene."),
        workers: int = typer.Option(
            None,
            "--workers",
            "-j",
            help="Worker processes, one GT scan each at a time (default: one per core from 200 scans on 4+ cores, "
            "else this process; 0 or 1: this process).",
        ),
        threads: int = typer.Option(
            None,
            "--threads-per-worker",
            help="Threads each worker's numerical libraries may use (default: cores / workers).",
        ),
    ) -> None:
        """Class-agnostic AP/AP50/AP25 exactly as ScanNet's benchmark script, plus PQ, Hungarian metrics and ARI."""
        from labelfree3d.evaluate.evaluator import jsonable_report
        from labelfree3d.evaluate.inputs import evaluate_paths

        labels = [v.strip() for v in void_labels.split(",") if v.strip()] if void_labels else None
        report = evaluate_paths(
            predictions, ground_truth, void_labels=labels, gt_format=gt_format, min_region_size=min_region_size,
            workers=workers, threads_per_worker=threads, progress=console.error if console.error.is_terminal else False,
        )  # fmt: skip
        if as_json:
            console.json(jsonable_report(report))
            return
        _print_report(report, per_scene)
