"""Line charts for reports, drawn by matplotlib (Agg, no display) as inline SVG text."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping

import numpy as np

from labelfree3d.evaluate import PrecisionRecallCurve
from labelfree3d.viz.palette import confidence_colors

__all__ = ["precision_recall_svg", "methods_precision_recall_svg", "training_curves_svg"]


def _svg(figure: object) -> str:
    """The figure as an <svg> element (XML prologue and DOCTYPE dropped) for inline HTML."""
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(figure)  # type: ignore[arg-type]
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def precision_recall_svg(curves: Mapping[str, PrecisionRecallCurve | None], ap_per_threshold: Mapping[str, float]) -> str:
    """One chart with the precision/recall curve of every IoU threshold that has one.

    Args:
        curves: threshold key ("0.50", ...) -> curve (None: undefined, left out).
        ap_per_threshold: threshold key -> AP, shown in the legend.

    Returns:
        The chart as an inline <svg> element.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    keys = sorted(curves, key=float)
    colours = confidence_colors(np.array([float(k) for k in keys])) / 255.0
    for key, colour in zip(keys, colours):
        curve = curves[key]
        if curve is None:
            continue
        # the script's curve is sampled at distinct scores; drawn as steps from high to low score
        recall, precision = curve.recall[::-1], curve.precision[::-1]
        ap = ap_per_threshold.get(key)
        label = f"IoU > {key}" + (f"  AP {100 * ap:.1f}" if ap is not None and np.isfinite(ap) else "")
        axes.step(recall, precision, where="post", color=colour, linewidth=2.0 if key in ("0.50", "0.25") else 1.1, label=label)
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.02)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_title("precision-recall per IoU threshold")
    if axes.lines:
        axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _svg(figure)


def methods_precision_recall_svg(
    curves: Mapping[str, Mapping[str, PrecisionRecallCurve | None]],
    ap_per_threshold: Mapping[str, Mapping[str, float]],
    thresholds: tuple[str, ...] = ("0.50", "0.25"),
) -> str:
    """Methods compared: one panel per IoU threshold, one precision/recall curve per method.

    Args:
        curves: method -> threshold key -> curve (None: undefined, left out).
        ap_per_threshold: method -> threshold key -> AP, shown in the legend.
        thresholds: the threshold keys to draw, one panel each.

    Returns:
        The chart as an inline <svg> element.
    """
    plt = _pyplot()
    figure, grid = plt.subplots(1, len(thresholds), figsize=(4.6 * len(thresholds), 3.8), squeeze=False)
    colours = plt.get_cmap("tab10" if len(curves) <= 10 else "tab20")
    for axes, key in zip(grid[0], thresholds):
        for index, (method, by_threshold) in enumerate(curves.items()):
            curve = by_threshold.get(key)
            if curve is None:
                continue
            ap = ap_per_threshold.get(method, {}).get(key)
            label = method + (f"  {100 * ap:.1f}" if ap is not None and np.isfinite(ap) else "")
            axes.step(curve.recall[::-1], curve.precision[::-1], where="post", color=colours(index % colours.N),
                      linewidth=1.4, label=label)  # fmt: skip
        axes.set_xlim(0.0, 1.0)
        axes.set_ylim(0.0, 1.02)
        axes.set_xlabel("recall")
        axes.set_ylabel("precision")
        axes.set_title(f"IoU > {key} (legend: AP{round(100 * float(key))})")
        if axes.lines:
            axes.legend(loc="lower left", frameon=False, fontsize=8)
    figure.tight_layout()
    return _svg(figure)


def training_curves_svg(series: Mapping[str, tuple[np.ndarray, np.ndarray]], x_label: str) -> str:
    """Small multiples: one panel per logged quantity against the step (or epoch).

    Args:
        series: name -> ((M,) x values, (M,) y values).
        x_label: name of the x axis ("step", "epoch", ...).

    Returns:
        The chart as an inline <svg> element.
    """
    plt = _pyplot()
    names = list(series)
    columns = min(3, max(len(names), 1))
    rows = max(1, -(-len(names) // columns))
    figure, grid = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.3 * rows), squeeze=False)
    for axes in grid.ravel()[len(names) :]:
        axes.set_visible(False)
    for axes, name in zip(grid.ravel(), names):
        x, y = series[name]
        axes.plot(x, y, linewidth=1.2, color="#3b6fb6", marker="o" if len(x) < 30 else None, markersize=3)
        # losses spanning orders of magnitude read better on a log axis
        if "loss" in name.lower() and np.all(y > 0) and y.max() / max(y.min(), 1e-300) > 50:
            axes.set_yscale("log")
        axes.set_title(re.sub(r"[_/]+", " ", name))
        axes.set_xlabel(x_label)
    figure.tight_layout()
    return _svg(figure)
