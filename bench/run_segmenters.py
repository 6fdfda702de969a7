"""Run every registered segmenter with its defaults on the dev data's two splits; record AP and time.

    PYTHONPATH=. python bench/run_segmenters.py                        # every method, every split
    PYTHONPATH=. python bench/run_segmenters.py --methods dbscan,felzenszwalb --datasets osd_select

Honest selection (docs/results.md): the dev data is split once, by `DEV_SPLITS` below, into a
*selection* part, on which defaults were chosen, and a *report* part, on which they were only
measured. OSD learn is split by cloud parity; the ScanNet scans by room, so that rescans of one
room never sit on both sides. Every method runs with its defaults: no per-dataset settings.

The scans and methods are run by the library's benchmark (`labelfree3d.batch.benchmark.
run_benchmark`, what `labelfree3d benchmark` runs): each split is evaluated with ScanNet's
class-agnostic protocol, pooled, and the wall time of `segment()` is recorded per scene after one
warm-up call per method (numba compilation excluded), one scan after another unless `--workers N`.

Results are merged into `bench/results/segmenters.json` (one entry per split and method, so
partial runs update only their rows) and rendered into the generated sections of
`docs/results.md` and `docs/benchmarks.md`, between marker comments; the hand-written text
around them is kept. Runs with `--limit` write nothing unless `--write`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _timing import replace_section  # bench/ is on sys.path when a script runs

from labelfree3d.batch.benchmark import run_benchmark
from labelfree3d.io.paths import data_root
from labelfree3d.segment import SEGMENTERS

ROOT = Path(__file__).resolve().parents[1]
RESULTS_JSON = ROOT / "bench" / "results" / "segmenters.json"
RESULTS_MD = ROOT / "docs" / "results.md"
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"

# The dev data's fixed split (docs/results.md, "Honest selection"). Selection: defaults were
# chosen on these. Report: measured only. ScanNet rooms are split by room (scene0000 rescans,
# 0001, 0002 | 0003, 0004, 0005, 0007). The raw scene0000_00 mesh is the same scan as the export's
# scene0000_00 (one name, evaluated once), so it is not in a split; docs/results.md has its rows.
OSD_SELECT = [f"osd/learn/learn{i}.pcd" for i in range(0, 45, 2)]
OSD_REPORT = [f"osd/learn/learn{i}.pcd" for i in range(1, 45, 2)]
SCANNET_SELECT_ROOMS = ("scene0000", "scene0001", "scene0002")
SCANNET_REPORT_ROOMS = ("scene0003", "scene0004", "scene0005", "scene0007")


def _votenet_scans(rooms: tuple[str, ...]) -> list[str]:
    folder = data_root() / "scannet-votenet"
    return [f"scannet-votenet/{path.name}" for path in sorted(folder.glob("*_vert.npy")) if path.name[:9] in rooms]


def dev_splits() -> dict[str, list[str]]:
    """Split name -> scan paths relative to `data_root()`."""
    return {
        "osd_select": OSD_SELECT,
        "osd_report": OSD_REPORT,
        "scannet_select": _votenet_scans(SCANNET_SELECT_ROOMS),
        "scannet_report": _votenet_scans(SCANNET_REPORT_ROOMS),
    }


# Published numbers (%) for the same methods: (method it compares with or None, row, source, AP,
# AP50, AP25). All are on the full ScanNet v2 validation set (312 scenes); ours are one scene.
PAPER_ROWS: list[dict[str, Any]] = [
    dict(method=method, row=row, source=source, ap=ap, ap50=ap50, ap25=ap25)
    for method, row, source, ap, ap50, ap25 in [
        ("hdbscan", "HDBSCAN", "UnScene3D Tab. 1", 1.6, 5.5, 32.1),
        ("felzenszwalb", "Felzenszwalb", "UnScene3D Tab. 1", 5.0, 12.7, 38.9),
        (None, "Nunes et al.", "UnScene3D Tab. 1", 2.3, 7.3, 30.5),
        ("ncut", "UnScene3D pseudo masks S⁰, 3D only", "UnScene3D Tab. 4 / 12", 2.0, 4.7, 13.8),
        ("ncut", "UnScene3D pseudo masks S⁰, 3D & 2D", "UnScene3D Tab. 4 / 12", 5.9, 10.0, 19.9),
        (None, "UnScene3D (4 self-training cycles)", "UnScene3D Tab. 1", 15.9, 32.2, 58.5),
        ("dbscan", "DBSCAN (eps 0.05)", "FreePoint Tab. S1", 3.3, 3.6, 13.4),
        ("kmeans", "K-Means (10 clusters)", "FreePoint Tab. S1", 2.7, 3.4, 12.2),
        ("birch", "Birch (10 clusters)", "FreePoint Tab. S1", 2.4, 7.5, 12.2),
        ("multicut", "FreePoint base masks (multicut)", "FreePoint Tab. S1 / Tab. 5", 4.1, 7.9, 21.0),
        (None, "FreePoint (two-step training)", "FreePoint Tab. 1", 10.7, 21.4, 37.8),
    ]
]
PAPER_NUMBERS: dict[str, list[dict[str, Any]]] = {"scannet_report": PAPER_ROWS, "scannet_select": PAPER_ROWS}

DATASET_TITLES = {
    "scannet_report": "ScanNet v2, report split (7 VoteNet-export scans of rooms 0003, 0004, 0005, 0007; "
    "50,000 points each; wall/floor/ceiling void)",
    "osd_report": "OSD learn, report split (the 22 odd-numbered Kinect tabletop clouds, pooled; table void)",
    "scannet_select": "ScanNet v2, selection split (7 VoteNet-export scans of rooms 0000, 0001, 0002)",
    "osd_select": "OSD learn, selection split (the 23 even-numbered clouds)",
}


MARK = "generated by bench/run_segmenters.py"
BEGIN, END = f"<!-- BEGIN {MARK} -->", f"<!-- END {MARK} -->"
TIME_BEGIN, TIME_END = f"<!-- BEGIN segmentation times, {MARK} -->", f"<!-- END segmentation times, {MARK} -->"


def dataset_inputs(name: str, limit: int | None) -> list[Path]:
    """The scan paths of a split under `data_root()` (the first `limit` only, when given)."""
    paths = [data_root() / relative for relative in dev_splits()[name]]
    return paths[:limit] if limit else paths


def cli_command(path: Path, method: str, settings: dict[str, Any]) -> str:
    """The `labelfree3d segment` call that reproduces one scene of a row."""
    shown = Path("../shared/data") / path.relative_to(data_root()) if path.is_relative_to(data_root()) else path
    parts = ["labelfree3d", "segment", str(shown), "--method", method]
    for key, value in settings.items():
        parts += ["--set", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    return shlex.join(parts)


def run_dataset(name: str, methods: list[str], limit: int | None, workers: int) -> dict[str, dict[str, Any]]:
    """Segment every scene of dataset `name` with every method; evaluate and time them.

    The loop over scans and methods is the library's (`labelfree3d.batch.benchmark.run_benchmark`,
    what `labelfree3d benchmark` runs): one warm-up call per method and worker first, `segment()`
    timed alone, the dataset's scenes pooled by `evaluate_scenes`' rules.

    Returns:
        method -> result entry (metrics, seconds per scene, settings, command, scene count).
    """
    paths = dataset_inputs(name, limit)
    settings: dict[str, dict[str, Any]] = {m: {} for m in methods}
    run = run_benchmark(paths, methods, method_settings=settings, workers=workers, thumbnails=0, progress=True)
    if run.unreadable:
        sys.exit(f"{name}: could not read {next(iter(run.unreadable.values()))}")
    results = {}
    for method, entry in run.methods.items():
        if entry.failures:
            scene, error = next(iter(entry.failures.items()))
            print(f"warning: {method} failed on {len(entry.failures)} {name} scene(s), e.g. {error}", file=sys.stderr)
        summary = entry.summary()
        results[method] = {
            "ap": summary["ap"],
            "ap50": summary["ap50"],
            "ap25": summary["ap25"],
            "scenes": len(run.scenes),
            "gt_instances": entry.report["counts"]["gt_instances"],
            "masks_per_scene": summary["masks_per_scene"],
            "seconds_mean": summary["seconds_per_scene"],
            "seconds_median": summary["seconds_median"],
            "seconds_max": summary["seconds_max"],
            "seconds_per_scene": {scene: round(seconds, 4) for scene, seconds in entry.seconds.items()},
            "settings": settings[method],
            "parameters": entry.parameters,
            "command": cli_command(paths[0], method, settings[method]),
        }
    return results


def percent(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{100 * value:.1f}"


def render_results(store: dict[str, Any]) -> str:
    """Markdown of the generated part of docs/results.md."""
    lines = [
        BEGIN,
        "",
        f"_Machine: {store.get('machine', '?')}; last run {store.get('updated', '?')}. "
        "AP columns in %, class-agnostic ScanNet protocol (`labelfree3d.evaluate`); time = mean wall "
        "time of `segment()` per scene (reading excluded, room structure and normals included, after a warm-up call)._",
        "",
    ]
    for dataset, title in DATASET_TITLES.items():
        entries = store.get("datasets", {}).get(dataset, {})
        if not entries:
            continue
        papers = {}
        for paper in PAPER_NUMBERS.get(dataset, []):
            if paper["method"]:
                papers.setdefault(paper["method"], []).append(paper)
        lines += [f"### {title}", ""]
        header = "| method | AP | AP50 | AP25 | masks/scene | s/scene |"
        rule = "|---|---:|---:|---:|---:|---:|"
        if papers:
            header += " paper AP / AP50 / AP25 (source) |"
            rule += "---|"
        lines += [header, rule]
        for method in sorted(entries, key=lambda m: -entries[m]["ap25"]):
            entry = entries[method]
            row = (
                f"| `{method}` | {percent(entry['ap'])} | {percent(entry['ap50'])} | {percent(entry['ap25'])} | "
                f"{entry['masks_per_scene']:.0f} | {entry['seconds_mean']:.2f} |"
            )
            if papers:
                cited = "; ".join(
                    f"{p['ap']} / {p['ap50']} / {p['ap25']} ({p['row']}, {p['source']})" for p in papers.get(method, [])
                )
                row += f" {cited or '–'} |"
            lines.append(row)
        scenes = {entries[m]["scenes"] for m in entries}
        gt = {entries[m]["gt_instances"] for m in entries}
        counts = (
            f"{'/'.join(map(str, sorted(scenes)))} scene(s), {'/'.join(map(str, sorted(gt)))} GT instances counted."
        )
        lines += [counts, ""]
        others = [p for p in PAPER_NUMBERS.get(dataset, []) if not p["method"] or p["method"] not in entries]
        if others:
            lines += ["Published rows without a run here (ScanNet v2 val, 312 scenes):", ""]
            lines += ["| row | source | AP | AP50 | AP25 |", "|---|---|---:|---:|---:|"]
            lines += [f"| {p['row']} | {p['source']} | {p['ap']} | {p['ap50']} | {p['ap25']} |" for p in others]
            lines.append("")
    lines.append(END)
    return "\n".join(lines)


def render_times(store: dict[str, Any]) -> str:
    """Markdown of the "Segmentation time per scene" section of docs/benchmarks.md."""
    lines = [
        TIME_BEGIN,
        "",
        "## Segmentation time per scene",
        "",
        "Wall time of `Segmenter.segment()` per scene (reading excluded; each method on its own copy of the "
        "scan, so room structure and normals count for every method; one warm-up call per method first so "
        "numba compilation is not counted), from",
        "",
        "```",
        "PYTHONPATH=. python bench/run_segmenters.py",
        "```",
        "",
        f"Machine: {store.get('machine', '?')}; last run {store.get('updated', '?')}, with "
        f"{store.get('workers', 0) or 'no'} worker processes (`--workers`; with 2 on 2 cores each scan shares the "
        "machine with another). The machine is shared, so treat these as provisional.",
        "",
        "| method | ScanNet selection mean (s) | ScanNet max (s) | OSD selection mean (s) | OSD median (s) | OSD max (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    datasets = store.get("datasets", {})
    methods = sorted(set(datasets.get("scannet_select", {})) | set(datasets.get("osd_select", {})))
    for method in methods:
        scannet = datasets.get("scannet_select", {}).get(method)
        osd = datasets.get("osd_select", {}).get(method)
        cells = [f"{scannet[k]:.2f}" if scannet else "–" for k in ("seconds_mean", "seconds_max")]
        cells += [f"{osd[k]:.2f}" if osd else "–" for k in ("seconds_mean", "seconds_median", "seconds_max")]
        lines.append(f"| `{method}` | {' | '.join(cells)} |")
    lines += ["", TIME_END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", help="comma-separated method names (default: every registered method)")
    parser.add_argument(
        "--datasets",
        default="scannet_report,osd_report,scannet_select,osd_select",
        help="comma-separated splits: scannet_report, osd_report, scannet_select, osd_select",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N scans of each split (quick runs)")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="worker processes (default 0: one scan after another in this process, so that "
        "the recorded times are not shared out between workers)",
    )
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="update the JSON store and the docs (default: yes unless --osd-limit)",
    )
    args = parser.parse_args()

    methods = args.methods.split(",") if args.methods else sorted(SEGMENTERS)
    unknown = [m for m in methods if m not in SEGMENTERS]
    if unknown:
        sys.exit(f"unknown method(s) {unknown}; registered: {', '.join(sorted(SEGMENTERS))}")
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    write = args.write if args.write is not None else args.limit is None

    store: dict[str, Any] = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {"datasets": {}}
    for retired in ("scannet", "osd"):  # before the split: defaults were measured on what they were chosen on
        store.get("datasets", {}).pop(retired, None)
    for dataset in datasets:
        results = run_dataset(dataset, methods, args.limit, args.workers)
        store.setdefault("datasets", {}).setdefault(dataset, {}).update(results)
        for method, entry in results.items():
            print(
                f"{dataset:15s} {method:16s} AP {percent(entry['ap']):>5s}  AP50 {percent(entry['ap50']):>5s}  "
                f"AP25 {percent(entry['ap25']):>5s}  {entry['masks_per_scene']:6.0f} masks  "
                f"{entry['seconds_mean']:.2f} s/scene",
                flush=True,
            )
    if not write:
        return
    store["workers"] = args.workers
    store["machine"] = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    store["updated"] = time.strftime("%Y-%m-%d")
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(store, indent=1, sort_keys=True) + "\n")
    replace_section(RESULTS_MD, BEGIN, END, render_results(store), "# Results on real scans\n")
    replace_section(BENCHMARKS_MD, TIME_BEGIN, TIME_END, render_times(store), "# Benchmarks\n")
    written = (RESULTS_JSON, RESULTS_MD, BENCHMARKS_MD)
    print("updated " + ", ".join(str(path.relative_to(ROOT)) for path in written))


if __name__ == "__main__":
    main()
