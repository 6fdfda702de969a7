"""`build_report`: one self-contained HTML evaluation report of a run or a prediction folder.

What the report shows depends on what it finds (docs/viewer.md, "Reports"):

* predictions + ground truth: AP / AP50 / AP25 and companions, per GT size, per dataset, per
  scene, precision-recall curves per IoU threshold (ScanNet's rules, via
  `InstanceEvaluator.precision_recall_curves`), and renders of the best and worst scenes
  (ground truth beside prediction, in the viewer's colours);
* a saved evaluation report instead of ground truth (e.g. the demo's `*_metrics.json`): its
  tables only;
* a training log (`train_log.jsonl`, ...): one curve per logged quantity.

Ground truth is `ground_truth=` when given, else the `ground_truth` path named by a `run.json`
or by a saved `labelfree3d evaluate --json` report (`inputs.ground_truth`) in the folder.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelfree3d.errors import InputError, ParameterError
from labelfree3d.io.atomic import check_output, write_text_atomic

if TYPE_CHECKING:
    from labelfree3d.batch.benchmark import BenchmarkResult

__all__ = [
    "TRAINING_LOG_NAMES",
    "RunContents",
    "ReportFile",
    "locate_run",
    "read_training_log",
    "build_report",
    "write_benchmark_report",
    "write_recipe_report",
]

# file names a training log may have, in the run folder or its logs/ sub-folder
TRAINING_LOG_NAMES = ("train_log.jsonl", "training_log.jsonl", "metrics.jsonl", "log.jsonl", "train_log.csv", "training_log.csv", "log.csv")
# keys that give a training log its x axis, in order of preference
_STEP_KEYS = ("step", "global_step", "iteration", "iter", "epoch")
_THUMBNAIL_SIZE = (320, 240)


@dataclass(frozen=True)
class RunContents:
    """What `locate_run` found in a run or prediction folder.

    Attributes:
        source: the folder or file given.
        prediction_files: our `.npz` prediction files and ScanNet benchmark index files.
        ground_truth: scan or folder of scans with instances, or None.
        saved_report: a JSON evaluation report (with "ap" and "per_scene"), or None.
        training_log: a JSON-lines or CSV training log, or None.
    """

    source: Path
    prediction_files: tuple[Path, ...]
    ground_truth: Path | None
    saved_report: Path | None
    training_log: Path | None


@dataclass(frozen=True)
class ReportFile:
    """What `build_report` wrote: the path, its size, the sections it holds and notes on what is missing."""

    path: Path
    size_bytes: int
    scenes: int
    sections: tuple[str, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)


def _is_prediction_npz(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "mask_indptr.npy" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"not readable JSON ({error})", path) from error


def _evaluation_in(payload: Any) -> dict[str, Any] | None:
    """The evaluation report inside a JSON payload: itself, or its "report" entry (demo metrics)."""
    for candidate in (payload, payload.get("report") if isinstance(payload, dict) else None):
        if isinstance(candidate, dict) and "ap" in candidate and isinstance(candidate.get("per_scene"), dict):
            return candidate
    return None


def locate_run(source: str | os.PathLike[str], ground_truth: str | os.PathLike[str] | None = None) -> RunContents:
    """Find predictions, ground truth, a saved evaluation and a training log for a report.

    Args:
        source: a prediction file, a folder of prediction files, or a run folder (predictions
            directly inside or in `predictions/`, a training log, `run.json`, saved reports).
        ground_truth: overrides any ground truth named inside the folder.

    Raises:
        InputError: `source` does not exist.
    """
    source = Path(source)
    if not source.exists():
        raise InputError("no such run folder or prediction file", source)
    if source.is_file():
        if source.suffix.lower() in (".jsonl", ".csv"):
            return RunContents(source, (), _as_path(ground_truth), None, source)
        return RunContents(source, (source,), _as_path(ground_truth), None, None)

    prediction_files: list[Path] = []
    for folder in (source, source / "predictions"):
        if not folder.is_dir():
            continue
        for child in sorted(folder.iterdir()):
            if child.name.startswith(".") or not child.is_file():
                continue
            if child.suffix.lower() == ".npz" and _is_prediction_npz(child):
                prediction_files.append(child)
            elif child.suffix.lower() == ".txt" and (folder / "predicted_masks").is_dir():
                prediction_files.append(child)  # ScanNet benchmark index beside its mask folder

    training_log = next(
        (folder / name for folder in (source, source / "logs") for name in TRAINING_LOG_NAMES if (folder / name).is_file()), None
    )

    named_truth: Path | None = None
    saved_report: Path | None = None
    run_file = source / "run.json"
    if run_file.is_file():
        value = _load_json(run_file).get("ground_truth")
        if value:
            named_truth = (source / value).resolve() if not Path(value).is_absolute() else Path(value)
    for candidate in sorted(source.glob("*.json")):
        if candidate.name == "run.json":
            continue
        try:
            payload = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # unrelated JSON next to the run is not our concern
        report = _evaluation_in(payload)
        if report is None:
            continue
        saved_report = saved_report or candidate
        inputs = report.get("inputs") or (payload.get("inputs") if isinstance(payload, dict) else None) or {}
        if named_truth is None and inputs.get("ground_truth"):
            value = Path(inputs["ground_truth"])
            named_truth = value if value.is_absolute() else (source / value).resolve()
    truth = _as_path(ground_truth) or named_truth
    return RunContents(source, tuple(prediction_files), truth, saved_report, training_log)


def _as_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


# ---------------------------------------------------------------------- training logs
def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def read_training_log(path: str | os.PathLike[str]) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Numeric series of a training log against its step.

    Args:
        path: JSON lines (one object per line, e.g. {"step": 100, "loss": 0.42, "lr": 1e-3})
            or CSV with a header row.

    Returns:
        (x name, {quantity: ((M,) x, (M,) y)}): x is the first of step, global_step, iteration,
        iter, epoch present in the records, else the record number; every other numeric
        field becomes a series over the records that hold it.

    Raises:
        InputError: unreadable file, a line that is not a JSON object, or no numeric field.
    """
    path = Path(path)
    records: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read training log ({error})", path) from error
    if path.suffix.lower() == ".csv":
        records = list(csv.DictReader(io.StringIO(text)))
    else:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"line {number} is not JSON ({error.msg})", path) from error
            if not isinstance(record, dict):
                raise InputError(f"line {number} is not a JSON object", path)
            records.append(record)
    x_name = next((key for key in _STEP_KEYS if any(_number(r.get(key)) is not None for r in records)), "record")
    names: list[str] = []
    for record in records:
        names += [key for key in record if key not in names and key != x_name and _number(record[key]) is not None]
    series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in names:
        xs, ys = [], []
        for index, record in enumerate(records):
            y = _number(record.get(name))
            x = float(index) if x_name == "record" else _number(record.get(x_name))
            if y is not None and x is not None:
                xs.append(x)
                ys.append(y)
        series[name] = (np.asarray(xs), np.asarray(ys))
    if not series:
        raise InputError("training log holds no numeric field to plot", path)
    return x_name, series


# ---------------------------------------------------------------------- evaluation
@dataclass
class _Evaluation:
    report: dict[str, Any]
    curves: dict[str, Any] | None
    sources: dict[str, tuple[Path, str | None]]  # scene -> (scan, reader format)
    masks: dict[str, Any]


def _evaluate(
    contents: RunContents,
    ground_truth: Path | Sequence[Path],
    void_labels: Sequence[str] | None,
    gt_format: str | None,
    min_region_size: int,
) -> _Evaluation:
    from labelfree3d.evaluate import InstanceEvaluator
    from labelfree3d.evaluate.inputs import load_ground_truth, load_predictions, pair_scenes
    from labelfree3d.evaluate.protocol import check_void_labels

    predictions = []
    for file in contents.prediction_files:
        predictions += load_predictions(file)
    names = [p.name for p in predictions]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise InputError(f"two prediction files are for scene {duplicate!r}; report one method at a time", contents.source)
    void_rule = f"unlabelled points and instances labelled {', '.join(void_labels)}" if void_labels else None
    evaluator = InstanceEvaluator(min_region_size=min_region_size, void_rule=void_rule)
    skipped: list[str] = []
    sources: dict[str, tuple[Path, str | None]] = {}
    masks_by_scene: dict[str, Any] = {}
    truths = [ground_truth] if isinstance(ground_truth, (str, os.PathLike)) else list(ground_truth)
    all_truth = (entry for path in truths for entry in load_ground_truth(path, void_labels, gt_format))
    categories: set[str] = set()
    for _prediction, truth, masks in pair_scenes(predictions, all_truth, skipped):
        categories |= truth.gt.category_names()
        evaluator.process(truth.name, truth.gt, masks, truth.dataset)
        sources[truth.name] = (truth.source, gt_format)
        masks_by_scene[truth.name] = masks
    if len(evaluator) == 0:
        raise InputError("no ground-truth scan matches the predictions", truths[0])
    check_void_labels(void_labels, categories)
    report = evaluator.evaluate()
    report["skipped_gt_scenes"] = skipped
    report["inputs"] = {"predictions": str(contents.source), "ground_truth": ", ".join(map(str, truths))}
    return _Evaluation(report, evaluator.precision_recall_curves(), sources, masks_by_scene)


def _scene_rank_key(entry: dict[str, Any]) -> float:
    for key in ("ap", "ap50", "ap25"):
        value = entry.get(key)
        if value is not None and math.isfinite(value):
            return float(value)
    return -1.0


def _thumbnails(evaluation: _Evaluation, void_labels: Sequence[str] | None, count: int) -> list[dict[str, Any]]:
    """Ground truth and prediction renders of the `count` best and `count` worst scenes."""
    from labelfree3d.io import read_scene
    from labelfree3d.viz.render import render_layers

    ranked = sorted(evaluation.report["per_scene"], key=lambda name: -_scene_rank_key(evaluation.report["per_scene"][name]))
    if len(ranked) <= 2 * count:
        chosen = [(name, "") for name in ranked]
    else:
        chosen = [(name, "best") for name in ranked[:count]] + [(name, "worst") for name in ranked[-count:]]
    cards = []
    for name, group in chosen:
        path, fmt = evaluation.sources[name]
        scene = read_scene(path, format=fmt)
        if void_labels and scene.gt is not None and scene.gt.instance_names is not None:
            scene = scene.replace(gt=scene.gt.with_void_names(void_labels))
        images = render_layers(scene, {"prediction": evaluation.masks[name]}, ["gt", "pred:prediction"], ["oblique"],
                               *_THUMBNAIL_SIZE)  # fmt: skip
        cards.append({
            "scene": name, "group": group, "entry": evaluation.report["per_scene"][name],
            "gt": _png_data_uri(images["gt", "oblique"]), "pred": _png_data_uri(images["pred:prediction", "oblique"]),
        })  # fmt: skip
    return cards


def _png_data_uri(image: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ---------------------------------------------------------------------- HTML
def _percent(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&ndash;"
    return f"{100.0 * float(value):.1f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th{' class=num' if i >= numeric_from else ''}>{html.escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if i >= numeric_from else ''}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary_section(report: dict[str, Any]) -> str:
    rows = [[label, _percent(report.get(key))] for key, label in
            (("ap", "AP (IoU 0.50:0.90)"), ("ap50", "AP50"), ("ap25", "AP25"), ("pq", "PQ"), ("sq", "SQ"), ("rq", "RQ"))
            if key in report]  # fmt: skip
    if "hungarian" in report:
        rows += [["Hungarian mean IoU", _percent(report["hungarian"].get("mean_iou"))],
                 ["Hungarian precision@0.5", _percent(report["hungarian"].get("precision"))],
                 ["Hungarian recall@0.5", _percent(report["hungarian"].get("recall"))]]  # fmt: skip
    if "ari" in report:
        rows.append(["ARI (non-void points)", _percent(report["ari"])])
    counts = report.get("counts", {})
    caption = (
        f"{counts.get('scenes', len(report.get('per_scene', {})))} scene(s), {counts.get('gt_instances', '?')} GT instances counted, "
        f"{counts.get('predictions', '?')} predictions; values in %"
    )
    parts = [f"<h2>Summary</h2><p class=caption>{html.escape(caption)}</p>", _table(["metric", "value"], rows)]
    per_size = report.get("per_size") or {}
    if per_size:
        size_rows = []
        for name, entry in per_size.items():
            low, high = entry["range"]
            span = f"[{low:g}, {'&infin;' if high is None else f'{high:g}'})"
            size_rows.append([html.escape(name), span, str(entry["gt_instances"]), _percent(entry["ap"]), _percent(entry["ap50"]), _percent(entry["ap25"])])
        parts += ["<h3>By ground-truth size (points)</h3>", _table(["bucket", "range", "GT", "AP", "AP50", "AP25"], size_rows, 2)]
    per_dataset = report.get("per_dataset") or {}
    if len(per_dataset) > 1:
        dataset_rows = [[html.escape(name), str(e["scenes"]), *(_percent(e.get(k)) for k in ("ap", "ap50", "ap25", "pq"))]
                        for name, e in per_dataset.items()]  # fmt: skip
        parts += ["<h3>By dataset</h3>", _table(["dataset", "scenes", "AP", "AP50", "AP25", "PQ"], dataset_rows)]
    per_threshold = report.get("ap_per_threshold") or {}
    if per_threshold:
        keys = sorted(per_threshold, key=float)
        parts += ["<h3>AP per IoU threshold</h3>", _table(["IoU >", *keys], [["AP", *(_percent(per_threshold[k]) for k in keys)]])]
    return "\n".join(parts)


def _scenes_section(report: dict[str, Any]) -> str:
    per_scene = report.get("per_scene") or {}
    ordered = sorted(per_scene, key=lambda name: -_scene_rank_key(per_scene[name]))
    rows = [[html.escape(name), str(e.get("points", "")), str(e.get("gt_instances", "")), str(e.get("predictions", "")),
             *(_percent(e.get(k)) for k in ("ap", "ap50", "ap25", "pq", "ari"))] for name, e in ((n, per_scene[n]) for n in ordered)]  # fmt: skip
    return "<h2>By scene</h2><p class=caption>best first (by AP, then AP50, AP25)</p>" + _table(
        ["scene", "points", "GT", "pred", "AP", "AP50", "AP25", "PQ", "ARI"], rows
    )


def _thumbnail_section(cards: list[dict[str, Any]]) -> str:
    items = []
    for card in cards:
        entry = card["entry"]
        label = f"{card['group']}: " if card["group"] else ""
        caption = f"{label}{html.escape(card['scene'])} &middot; AP {_percent(entry.get('ap'))}, AP50 {_percent(entry.get('ap50'))}, AP25 {_percent(entry.get('ap25'))}"
        items.append(
            f'<figure class=thumb><div class=pair><img alt="ground truth of {html.escape(card["scene"])}" src="{card["gt"]}">'
            f'<img alt="prediction on {html.escape(card["scene"])}" src="{card["pred"]}"></div>'
            f"<figcaption>{caption}<br><span class=caption>left: ground truth, right: prediction</span></figcaption></figure>"
        )
    return "<h2>Best and worst scenes</h2><div class=thumbs>" + "".join(items) + "</div>"


def build_report(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    ground_truth: str | os.PathLike[str] | None = None,
    void_labels: Sequence[str] | None = None,
    gt_format: str | None = None,
    min_region_size: int = 100,
    thumbnails: int = 3,
) -> ReportFile:
    """Write an HTML report of a run or prediction folder to `output` (atomically).

    Args:
        source: prediction file, folder of predictions, or run folder (see `locate_run`).
        output: HTML file to write.
        ground_truth: scan or folder of scans with instances; default: named in the folder.
        void_labels: categories treated as void (default: the reader's choice).
        gt_format: reader name for the ground truth; detected when None.
        min_region_size: GT instances / masks under this many points are ignored / dropped.
        thumbnails: renders of this many best and this many worst scenes (0: none).

    Returns:
        `ReportFile` with the sections written and notes on what could not be shown.

    Raises:
        InputError: nothing to report (no predictions with ground truth, saved evaluation or
            training log), or unreadable inputs.
    """
    from labelfree3d.evaluate import jsonable_report
    from labelfree3d.viz.charts import precision_recall_svg, training_curves_svg

    if isinstance(thumbnails, bool) or not isinstance(thumbnails, int) or thumbnails < 0:
        raise ParameterError(f"thumbnails must be an integer >= 0 (0: none), got {thumbnails!r}")
    if isinstance(min_region_size, bool) or not isinstance(min_region_size, int) or min_region_size < 0:
        raise ParameterError(f"min_region_size must be an integer >= 0, got {min_region_size!r}")
    check_output(output, inputs=[source, ground_truth])
    if (Path(source) / "recipe.json").is_file() and ground_truth is None:
        return write_recipe_report(source, output, void_labels=void_labels, min_region_size=min_region_size, thumbnails=thumbnails)
    contents = locate_run(source, ground_truth)
    notes: list[str] = []
    sections: list[str] = []
    body: list[str] = []
    report: dict[str, Any] | None = None
    scenes = 0
    evaluated_against: Path | None = None
    if contents.prediction_files and contents.ground_truth is not None:
        evaluated_against = contents.ground_truth
        evaluation = _evaluate(contents, contents.ground_truth, void_labels, gt_format, min_region_size)
        report = evaluation.report
        scenes = len(report["per_scene"])
        body.append(_summary_section(report))
        sections.append("evaluation")
        if evaluation.curves is not None and any(c is not None for c in evaluation.curves.values()):
            body.append("<h2>Precision&ndash;recall</h2>" + precision_recall_svg(evaluation.curves, report["ap_per_threshold"]))
            sections.append("precision-recall")
        body.append(_scenes_section(report))
        if thumbnails > 0:
            body.append(_thumbnail_section(_thumbnails(evaluation, void_labels, thumbnails)))
            sections.append("thumbnails")
    elif contents.saved_report is not None and (report := _evaluation_in(_load_json(contents.saved_report))) is not None:
        scenes = len(report["per_scene"])
        body.append(f"<p class=note>Tables from the saved evaluation {html.escape(str(contents.saved_report))}. "
                    "Precision&ndash;recall curves and scene renders need the ground truth: pass --gt.</p>")  # fmt: skip
        body.append(_summary_section(report))
        body.append(_scenes_section(report))
        sections.append("evaluation")
        notes.append("no ground truth found: tables only, from the saved evaluation (pass --gt for curves and renders)")
    elif contents.prediction_files:
        raise InputError("no ground truth for these predictions: pass --gt SCAN_OR_FOLDER", contents.source)

    if contents.training_log is not None:
        x_name, series = read_training_log(contents.training_log)
        body.append(f"<h2>Training</h2><p class=caption>{html.escape(str(contents.training_log))}</p>" + training_curves_svg(series, x_name))
        sections.append("training")
    if not sections:
        raise InputError(
            "found no predictions (.npz), saved evaluation (.json) or training log "
            f"({', '.join(TRAINING_LOG_NAMES[:2])}, ...) to report on",
            contents.source,
        )

    facts = [("source", str(contents.source))]
    if evaluated_against is not None:
        facts.append(("ground truth", str(evaluated_against)))
    if report is not None and "protocol" in report:
        facts.append(("protocol", _protocol_line(report["protocol"])))
    title = f"labelfree3d report: {contents.source.name}"
    written = _write_page(output, title, facts, body, None if report is None else jsonable_report(report))
    return ReportFile(written, written.stat().st_size, scenes, tuple(sections), tuple(notes))


def _protocol_line(protocol: dict[str, Any]) -> str:
    return f"{protocol.get('name', '')}; void: {protocol.get('void', '')}"


def _write_page(output: str | os.PathLike[str], title: str, facts: list[tuple[str, str]], body: Sequence[str], data: Any) -> Path:
    """Fill the report template (title, facts, body, the numbers as embedded JSON) and write it atomically."""
    from labelfree3d import __version__

    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    facts = [*facts, ("generated", f"{generated} by labelfree3d {__version__}")]
    header = "<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts) + "</dl>"
    embedded = ""
    if data is not None:  # the numbers behind the tables, for scripts
        text = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
        embedded = f'<script type="application/json" id="labelfree3d-report">{text}</script>'
    template = resources.files("labelfree3d.viz").joinpath("static", "report.html").read_text(encoding="utf-8")
    parts = {"TITLE": html.escape(title), "BODY": f"<h1>{html.escape(title)}</h1>{header}{''.join(body)}{embedded}"}
    # one pass over the template only: inserted text is never searched for placeholders again
    page = re.sub(r"@@([A-Z]+)@@", lambda match: parts[match.group(1)], template)
    return write_text_atomic(output, page)


# ---------------------------------------------------------------------- recipe runs
_LOSS_TERMS = ("total", "dice", "bce", "mean", "box", "objectness")


def write_recipe_report(
    run: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    void_labels: Sequence[str] | None = None,
    min_region_size: int = 100,
    thumbnails: int = 3,
) -> ReportFile:
    """The HTML report of a `labelfree3d fit` run folder: stages, loss curves, best and worst scans.

    Args:
        run: the run folder (holds `recipe.json`, `metrics.json` and one folder per stage).
        output: HTML file to write (atomically).
        void_labels: categories treated as void when scoring the final model's scans.
        min_region_size: GT instances / masks under this many points are ignored / dropped.
        thumbnails: renders of this many best and worst evaluation scans (0: none).

    Returns:
        `ReportFile`; the stage table holds AP / AP50 / AP25 (%) of every scored stage on the
        evaluation scans, the curves every training stage's losses (log.csv) against its step.

    Raises:
        InputError: `run` holds no readable recipe.json or no finished stage.
    """
    from labelfree3d.viz.charts import training_curves_svg

    run = Path(run)
    recipe = _load_json(run / "recipe.json")
    metrics_file = run / "metrics.json"
    if not metrics_file.is_file():
        raise InputError("the run has no metrics.json yet: no stage has finished", run)
    stages = _load_json(metrics_file).get("stages") or []
    rows = []
    for stage in stages:
        scores = stage.get("scores") or {}
        rows.append([html.escape(stage["name"]), html.escape(stage.get("description", "")),
                     *(_percent(scores.get(k)) for k in ("ap", "ap50", "ap25")), f"{float(stage.get('seconds', 0)):.0f}"])  # fmt: skip
    body = [
        "<h2>Stages</h2><p class=caption>AP / AP50 / AP25 in % on the evaluation scans, which training never saw; "
        "the first scored row is the training-free method the model must beat</p>",
        _table(["stage", "what", "AP", "AP50", "AP25", "seconds"], rows, 2),
    ]
    sections, notes = ["stages"], []
    for stage in stages:
        log = run / stage["name"] / "log.csv"
        if not log.is_file():
            continue
        x_name, series = read_training_log(log)
        losses = {name: series[name] for name in _LOSS_TERMS if name in series and np.any(series[name][1] != 0)}
        if losses:
            body.append(f"<h3>{html.escape(stage['name'])}: losses</h3>" + training_curves_svg(losses, x_name))
            if "training" not in sections:
                sections.append("training")
    eval_scans = [Path(p) for p in recipe.get("eval_scans") or []]
    model_stages = [s for s in stages if (run / s["name"] / "model.safetensors").is_file()]
    scenes = 0
    final_eval = run / model_stages[-1]["name"] / "eval" if model_stages else None
    if eval_scans and final_eval is not None and final_eval.is_dir():
        contents = RunContents(final_eval, tuple(sorted(p for p in final_eval.glob("*.npz") if _is_prediction_npz(p))), None, None, None)
        evaluation = _evaluate(contents, eval_scans, void_labels, None, min_region_size)
        scenes = len(evaluation.report["per_scene"])
        body.append(f"<h2>Final model ({html.escape(model_stages[-1]['name'])}) per scan</h2>")
        body.append(_scenes_section(evaluation.report))
        sections.append("scenes")
        if thumbnails > 0:
            body.append(_thumbnail_section(_thumbnails(evaluation, void_labels, thumbnails)))
            sections.append("thumbnails")
    else:
        notes.append("no evaluation scans (fit --eval) or no finished model stage: no per-scan results")
    facts = [("run", str(run)), ("recipe", f"{recipe.get('recipe')} (preset {recipe.get('preset')})"),
             ("training scans", str(len(recipe.get("scans") or []))), ("evaluation scans", str(len(eval_scans)))]  # fmt: skip
    written = _write_page(output, f"labelfree3d fit: {run.name}", facts, body, {"recipe": recipe, "stages": stages})
    return ReportFile(written, written.stat().st_size, scenes, tuple(sections), tuple(notes))


# ---------------------------------------------------------------------- benchmarks
def _rank(value: Any) -> float:
    return float(value) if value is not None and math.isfinite(value) else -1.0


def _benchmark_table(result: BenchmarkResult) -> str:
    order = sorted(result.methods, key=lambda m: tuple(-_rank(result.methods[m].report[k]) for k in ("ap", "ap50", "ap25")))
    rows = []
    for method in order:
        row = result.methods[method].summary()
        failures = f'<span class=bad>{row["failures"]}</span>' if row["failures"] else "0"
        masks = "&ndash;" if not math.isfinite(row["masks_per_scene"]) else f"{row['masks_per_scene']:.1f}"
        seconds = "&ndash;" if not math.isfinite(row["seconds_per_scene"]) else f"{row['seconds_per_scene']:.2f}"
        rows.append([f"<code>{html.escape(method)}</code>", _percent(row["ap"]), _percent(row["ap50"]), _percent(row["ap25"]),
                     masks, seconds, failures])  # fmt: skip
    counts = next(iter(result.methods.values())).report["counts"]
    caption = (
        f"{len(result.scenes)} scene(s) pooled, {counts['gt_instances']} GT instances counted; AP in %; "
        "s/scene: wall time of segment() alone (reading excluded, after a warm-up call); "
        "a failed scene counts as predicting nothing"
    )
    return (
        f"<h2>Methods</h2><p class=caption>{html.escape(caption)}</p>"
        + _table(["method", "AP", "AP50", "AP25", "masks/scene", "s/scene", "failures"], rows)
    )


def _benchmark_problems(result: BenchmarkResult) -> str:
    parts = []
    for method, entry in result.methods.items():
        if entry.failures:
            items = "".join(f"<li>{html.escape(scene)}: {html.escape(error)}</li>" for scene, error in entry.failures.items())
            parts.append(f"<details><summary><code>{html.escape(method)}</code> failed on {len(entry.failures)} scene(s)</summary><ul>{items}</ul></details>")
    if result.unreadable:
        items = "".join(f"<li>{html.escape(error)}</li>" for error in result.unreadable.values())
        parts.append(f"<details><summary>{len(result.unreadable)} scan(s) not evaluated</summary><ul>{items}</ul></details>")
    if result.without_gt:
        items = "".join(f"<li>{html.escape(path)}</li>" for path in result.without_gt)
        parts.append(f"<details><summary>{len(result.without_gt)} scan(s) without ground truth (not segmented)</summary><ul>{items}</ul></details>")
    for note in result.notes:
        parts.append(f"<p class=note>{html.escape(note)}</p>")
    return ("<h2>Failures and skipped scans</h2>" + "".join(parts)) if parts else ""


def _benchmark_curves(result: BenchmarkResult) -> str:
    from labelfree3d.viz.charts import methods_precision_recall_svg, precision_recall_svg

    curves = {m: r.curves for m, r in result.methods.items()}
    if not any(c is not None for by_threshold in curves.values() for c in by_threshold.values()):
        return ""
    aps = {m: r.report["ap_per_threshold"] for m, r in result.methods.items()}
    parts = ["<h2>Precision&ndash;recall</h2>", methods_precision_recall_svg(curves, aps)]
    for method, entry in result.methods.items():
        if any(c is not None for c in entry.curves.values()):
            parts.append(f"<details><summary><code>{html.escape(method)}</code>: every IoU threshold</summary>"
                         f"{precision_recall_svg(entry.curves, entry.report['ap_per_threshold'])}</details>")  # fmt: skip
    return "".join(parts)


def _benchmark_scenes(result: BenchmarkResult) -> str:
    methods = list(result.methods)
    first = result.methods[methods[0]].report["per_scene"]
    rows = []
    for scene in result.scenes:
        cells = [html.escape(scene), str(first[scene]["points"]), str(first[scene]["gt_instances"])]
        for method in methods:
            entry = result.methods[method].report["per_scene"][scene]
            if scene in result.methods[method].failures:
                cells.append("<span class=bad>failed</span>")
            else:
                cells.append(" / ".join(_percent(entry.get(k)) for k in ("ap", "ap50", "ap25")))
        rows.append(cells)
    headers = ["scene", "points", "GT", *methods]
    return ("<h2>By scene</h2><p class=caption>each cell: AP / AP50 / AP25 (%) of that method on that scene</p>"
            + _table(headers, rows))  # fmt: skip


def _benchmark_thumbnails(result: BenchmarkResult) -> str:
    if not result.thumbnails:
        return ""
    blocks = []
    for thumbnail in result.thumbnails:
        figures = []
        for key in ["gt", *result.methods]:
            image = thumbnail.images.get(key)
            if key == "gt":
                caption = "ground truth"
            else:
                entry = result.methods[key].report["per_scene"].get(thumbnail.scene, {})
                caption = f"{key} &middot; AP50 {_percent(entry.get('ap50'))}"
            if image is None:
                figures.append(f"<figure class=thumb><div class=missing>failed</div><figcaption>{caption}</figcaption></figure>")
                continue
            source = "data:image/png;base64," + base64.b64encode(image).decode("ascii")
            alt = f"{'ground truth' if key == 'gt' else key} on {thumbnail.scene}, top view"
            figures.append(f'<figure class=thumb><img class=small alt="{html.escape(alt)}" src="{source}"><figcaption>{caption}</figcaption></figure>')
        blocks.append(f"<h3>{html.escape(thumbnail.scene)}</h3><div class=thumbs>{''.join(figures)}</div>")
    return "<h2>Scenes seen from above</h2><p class=caption>ground truth and each method's masks (viewer colours)</p>" + "".join(blocks)


def write_benchmark_report(result: BenchmarkResult, output: str | os.PathLike[str]) -> ReportFile:
    """Write the HTML report of `labelfree3d benchmark` (a `run_benchmark` result), atomically.

    One self-contained page: the methods table (AP, AP50, AP25, masks/scene, s/scene,
    failures), precision-recall curves of every method at IoU 0.50 and 0.25 (and each method's
    at every threshold, folded), AP per scene and method, and top-view renders of ground truth
    beside every method for a few scenes; the metrics (`BenchmarkResult.to_json()`) are
    embedded as JSON (`<script id="labelfree3d-report">`).
    """
    body = [_benchmark_table(result), _benchmark_problems(result), _benchmark_curves(result), _benchmark_scenes(result),
            _benchmark_thumbnails(result)]  # fmt: skip
    sections = tuple(name for name, part in zip(("methods", "failures", "precision-recall", "scenes", "thumbnails"), body) if part)
    workers = "in this process" if result.workers == 0 else f"{result.workers} worker processes"
    threads = "" if result.threads_per_worker is None else f", {result.threads_per_worker} thread(s) each"
    facts = [
        ("data", result.data),
        ("scans", f"{len(result.scans)} listed, {len(result.scenes)} evaluated, {len(result.without_gt)} without ground truth, "
                  f"{len(result.unreadable)} not evaluated"),
        ("protocol", _protocol_line(result.protocol)),
        ("run", f"{workers}{threads}; {result.seconds:.1f} s"),
    ]  # fmt: skip
    name = Path(result.data).name or result.data
    written = _write_page(output, f"labelfree3d benchmark: {name}", facts, body, result.to_json())
    return ReportFile(written, written.stat().st_size, len(result.scenes), sections)
