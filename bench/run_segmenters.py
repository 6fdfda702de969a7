"""Run registered segmenters on ScanNet scene0000_00 and the 45 OSD learn clouds; record AP and time.

    PYTHONPATH=. python bench/run_segmenters.py                      # every method, both datasets
    PYTHONPATH=. python bench/run_segmenters.py --methods dbscan,felzenszwalb --osd-limit 5

Every registered method runs by default (methods merged later, e.g. `ncut` and `multicut`, are
picked up without editing this script), with the per-dataset settings of `DATASET_SETTINGS` on
top of its defaults. The scans and methods are run by the library's benchmark
(`labelfree3d.batch.benchmark.run_benchmark`, what `labelfree3d benchmark` runs): each dataset
is evaluated with ScanNet's class-agnostic protocol (the 45 OSD clouds pooled into one dataset,
as a benchmark does), and the wall time of `segment()` is recorded per scene after one warm-up
call per method (numba compilation excluded), one scan after another unless `--workers N`.

Results are merged into `bench/results/segmenters.json` (one entry per dataset and method, so
partial runs update only their rows) and rendered into the generated sections of
`docs/results.md` and `docs/benchmarks.md`, between marker comments; the hand-written text
around them is kept. Runs on a subset of OSD (`--osd-limit`) write nothing unless `--write`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from labelfree3d.batch.benchmark import run_benchmark
from labelfree3d.io.paths import data_root
from labelfree3d.segment import SEGMENTERS

ROOT = Path(__file__).resolve().parents[1]
RESULTS_JSON = ROOT / "bench" / "results" / "segmenters.json"
RESULTS_MD = ROOT / "docs" / "results.md"
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"

# Per-dataset settings layered over each method's defaults (which target room-scale ScanNet
# meshes). Methods not listed run with their defaults.
#
# scannet: one raw ScanNet v2 mesh (~2 cm vertex spacing). The papers' baseline rows cluster the
#   full scene (UnScene3D Sec. 4: "input mesh vertices, colors, and normals"), so no plane
#   removal; the defaults are the papers' (FreePoint Table S1: DBSCAN eps 0.05, K-means / Birch
#   10 clusters) or documented in each class.
# osd: Kinect tabletop clouds (~200k points at 0.6-1.3 m, 1-2 mm spacing). 1 cm voxels; the
#   table is the dominant plane and every object touches it, so the clustering baselines remove
#   planes first (the classic tabletop pipeline; without it everything is one cluster).
#   Distances scale down with the scene: DBSCAN's eps becomes 2 cm (objects stand a few cm
#   apart), and with 2-16 objects per cloud K-means / Birch estimate their cluster count.
TABLETOP_CLUSTERING = {"voxel_size": 0.01, "remove_planes": True, "plane_distance": 0.01}
DATASET_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "scannet": {
        # room scale: floor and walls are uneven over metres and clutter touches them, so take
        # more, thicker planes than the tabletop defaults
        "plane_euclidean": {"voxel_size": 0.02, "plane_distance": 0.03, "max_planes": 10, "min_plane_fraction": 0.02},
    },
    "osd": {
        "dbscan": {**TABLETOP_CLUSTERING, "eps": 0.02},
        "hdbscan": {**TABLETOP_CLUSTERING},
        "kmeans": {**TABLETOP_CLUSTERING, "n_clusters": 0},
        "birch": {**TABLETOP_CLUSTERING, "n_clusters": 0, "threshold": 0.02},
        "felzenszwalb": {"voxel_size": 0.01},
    },
}

# Published numbers (%) for the same methods: (method it compares with or None, row, source, AP,
# AP50, AP25). All are on the full ScanNet v2 validation set (312 scenes); ours are one scene.
PAPER_NUMBERS: dict[str, list[dict[str, Any]]] = {
    "scannet": [
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
    ],
    "osd": [],
}

DATASET_TITLES = {
    "scannet": "ScanNet v2 scene0000_00 (one raw mesh, 81,369 vertices; wall/floor/ceiling void)",
    "osd": "OSD learn (45 Kinect tabletop clouds pooled; table void)",
}

MARK = "generated by bench/run_segmenters.py"
BEGIN, END = f"<!-- BEGIN {MARK} -->", f"<!-- END {MARK} -->"
TIME_BEGIN, TIME_END = f"<!-- BEGIN segmentation times, {MARK} -->", f"<!-- END segmentation times, {MARK} -->"


def dataset_inputs(name: str, osd_limit: int | None) -> list[Path]:
    """The scan paths of a dataset under `data_root()`."""
    if name == "scannet":
        return [data_root() / "scannet" / "scene0000_00"]
    clouds = sorted((data_root() / "osd" / "learn").glob("learn*.pcd"), key=lambda p: int(re.sub(r"\D", "", p.stem)))
    return clouds[:osd_limit] if osd_limit else clouds


def cli_command(path: Path, method: str, settings: dict[str, Any]) -> str:
    """The `labelfree3d segment` call that reproduces one scene of a row."""
    shown = Path("../shared/data") / path.relative_to(data_root()) if path.is_relative_to(data_root()) else path
    parts = ["labelfree3d", "segment", str(shown), "--method", method]
    for key, value in settings.items():
        parts += ["--set", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    return shlex.join(parts)


def run_dataset(name: str, methods: list[str], osd_limit: int | None, workers: int) -> dict[str, dict[str, Any]]:
    """Segment every scene of dataset `name` with every method; evaluate and time them.

    The loop over scans and methods is the library's (`labelfree3d.batch.benchmark.run_benchmark`,
    what `labelfree3d benchmark` runs): one warm-up call per method and worker first, `segment()`
    timed alone, the dataset's scenes pooled by `evaluate_scenes`' rules.

    Returns:
        method -> result entry (metrics, seconds per scene, settings, command, scene count).
    """
    paths = dataset_inputs(name, osd_limit)
    settings = {m: DATASET_SETTINGS.get(name, {}).get(m, {}) for m in methods}
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
        "time of `segment()` per scene (reading excluded, after a warm-up call)._",
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
        lines += ["", "Commands (one scene; the harness applies the same settings to every scene):", "", "```"]
        lines += [entries[m]["command"] for m in sorted(entries)]
        lines += ["```", ""]
        scenes = {entries[m]["scenes"] for m in entries}
        gt = {entries[m]["gt_instances"] for m in entries}
        counts = f"{'/'.join(map(str, sorted(scenes)))} scene(s), {'/'.join(map(str, sorted(gt)))} GT instances counted."
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
        "Wall time of `Segmenter.segment()` per scene (reading excluded, one warm-up call per method "
        "first so numba compilation is not counted), from",
        "",
        "```",
        "PYTHONPATH=. python bench/run_segmenters.py",
        "```",
        "",
        f"Machine: {store.get('machine', '?')}; last run {store.get('updated', '?')}. The machine is shared, "
        "so treat these as provisional.",
        "",
        "| method | scene0000_00 (s) | OSD learn mean (s) | OSD median (s) | OSD max (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    datasets = store.get("datasets", {})
    methods = sorted(set(datasets.get("scannet", {})) | set(datasets.get("osd", {})))
    for method in methods:
        scannet = datasets.get("scannet", {}).get(method)
        osd = datasets.get("osd", {}).get(method)
        cells = [f"{scannet['seconds_mean']:.2f}" if scannet else "–"]
        cells += [f"{osd[k]:.2f}" if osd else "–" for k in ("seconds_mean", "seconds_median", "seconds_max")]
        lines.append(f"| `{method}` | {' | '.join(cells)} |")
    lines += ["", TIME_END]
    return "\n".join(lines)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", help="comma-separated method names (default: every registered method)")
    parser.add_argument("--datasets", default="scannet,osd", help="comma-separated: scannet, osd")
    parser.add_argument("--osd-limit", type=int, default=None, help="only the first N OSD clouds (quick runs)")
    parser.add_argument("--workers", type=int, default=0,
                        help="worker processes (default 0: one scan after another in this process, so that "
                        "the recorded times are not shared out between workers)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                        help="update the JSON store and the docs (default: yes unless --osd-limit)")
    args = parser.parse_args()

    methods = args.methods.split(",") if args.methods else sorted(SEGMENTERS)
    unknown = [m for m in methods if m not in SEGMENTERS]
    if unknown:
        sys.exit(f"unknown method(s) {unknown}; registered: {', '.join(sorted(SEGMENTERS))}")
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    write = args.write if args.write is not None else args.osd_limit is None

    store: dict[str, Any] = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {"datasets": {}}
    for dataset in datasets:
        results = run_dataset(dataset, methods, args.osd_limit, args.workers)
        store.setdefault("datasets", {}).setdefault(dataset, {}).update(results)
        for method, entry in results.items():
            print(
                f"{dataset:8s} {method:16s} AP {percent(entry['ap']):>5s}  AP50 {percent(entry['ap50']):>5s}  "
                f"AP25 {percent(entry['ap25']):>5s}  {entry['masks_per_scene']:6.0f} masks  "
                f"{entry['seconds_mean']:.2f} s/scene",
                flush=True,
            )
    if not write:
        return
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
