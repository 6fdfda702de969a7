"""Structure-last scores on and off: AP and precision/recall curves per method, on the selection split.

    PYTHONPATH=. python bench/structure_scores.py                     # felzenszwalb, multicut, plane_euclidean
    PYTHONPATH=. python bench/structure_scores.py --methods dbscan --structure keep

Each method runs twice on the ScanNet selection split (`bench/run_segmenters.py`'s `dev_splits`),
with `structure_scores` on and off and everything else at its defaults, or with the room structure
kept in (`--structure keep`, where wall and floor masks exist to be ranked). The precision/recall
curves come from the evaluator (`InstanceEvaluator.precision_recall_curves`); the chart is written
to `docs/images/structure_scores.svg` and the AP table is printed as markdown for docs/results.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labelfree3d.evaluate import InstanceEvaluator
from labelfree3d.io import read_scene, write_text_atomic
from labelfree3d.io.paths import data_root
from labelfree3d.segment import make_segmenter
from labelfree3d.viz.charts import methods_precision_recall_svg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_segmenters import dev_splits  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="felzenszwalb,multicut,plane_euclidean")
    parser.add_argument("--structure", default="keep", choices=("remove", "keep"))
    parser.add_argument("--split", default="scannet_select")
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "images" / "structure_scores.svg"))
    args = parser.parse_args()
    scenes = [read_scene(data_root() / relative) for relative in dev_splits()[args.split]]
    curves, aps, rows = {}, {}, []
    for method in args.methods.split(","):
        for scored in (True, False):
            segmenter = make_segmenter(method, structure=args.structure, structure_scores=scored)
            evaluator = InstanceEvaluator()
            for scene in scenes:
                evaluator.process(scene.name, scene.gt, segmenter.segment(scene))
            report = evaluator.evaluate()
            label = f"{method} ({'structure last' if scored else 'own scores'})"
            curves[label] = evaluator.precision_recall_curves()
            aps[label] = report["ap_per_threshold"]
            rows.append(f"| `{method}` | {'on' if scored else 'off'} | {100 * report['ap']:.1f} | "
                        f"{100 * report['ap50']:.1f} | {100 * report['ap25']:.1f} |")  # fmt: skip
            print(rows[-1], flush=True)
    write_text_atomic(args.output, methods_precision_recall_svg(curves, aps))
    print(f"| method | structure_scores | AP | AP50 | AP25 |  ({args.split}, structure={args.structure})")
    print("\n".join(rows))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
