"""`labelfree3d evaluate` against ScanNet's `evaluate_semantic_instance.py`, whole processes, side by side.

Usage (from the repository root; DIR holds ScanNet's `evaluate_semantic_instance.py`, `util.py`
and `util_3d.py` from `BenchmarkScripts/` of github.com/ScanNet/ScanNet, which you fetch
yourself: their code is not part of this project):

    PYTHONPATH=. python bench/bench_evaluate_cli.py --scannet-script DIR [--repeats 7] [--out timings.json]

What it does, in a temporary folder (or `--work`):

1. predictions: `labelfree3d segment <scene> -m felzenszwalb --format scannet` writes the ScanNet
   benchmark folder (`<scene>.txt` + `predicted_masks/`, one "0/1" line per vertex); every
   label id is then set to 39 (otherfurniture), so that ScanNet's script, which skips masks of
   classes outside its 18, counts every mask. Our evaluation ignores label ids.
2. ground truth as ScanNet's GT txt (`labelfree3d.io.write_scannet_gt_txt`): each instance the
   project evaluates as class 39 (`39000 + k`), each void one (wall, floor, ceiling) as wall
   (`1000 + k`, void for the script too), unannotated vertices 0. On this file both protocols
   coincide, and the AP numbers are checked to agree to 1e-9.
3. ScanNet's three files are converted to Python 3 with `lib2to3` into the work folder, with a
   five-line shim for the numpy aliases NumPy 2 removed (np.float, np.bool, np.int, np.in1d).
4. each command is run `--repeats` times as a fresh process (interpreter start and imports
   included, after one untimed run that warms the file cache); median and min wall seconds:
   (a) ScanNet's script `--pred_path P --gt_path G`, (b) `labelfree3d evaluate P <raw scene
   folder>`, (c) `labelfree3d evaluate P G/<scene>.txt`, and `python -c "import numpy"` as the
   floor every Python tool pays.

It also times reading one mask file: ScanNet's `load_ids` against `_read_mask_column`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labelfree3d.io import read_scene, write_scannet_gt_txt
from labelfree3d.io.paths import data_root
from labelfree3d.io.predictions import _read_mask_column

SCRIPT_FILES = ("evaluate_semantic_instance.py", "util.py", "util_3d.py")
CLASS_ID = 39  # otherfurniture: one of the 18 classes ScanNet's script evaluates
# NumPy 2 removed these aliases the script uses; prepended to the converted script only
NUMPY_SHIM = """import numpy as _np  # bench shim: aliases NumPy 2 removed
for _name, _value in (("float", float), ("bool", bool), ("int", int)):
    if not hasattr(_np, _name):
        setattr(_np, _name, _value)
if not hasattr(_np, "in1d"):
    _np.in1d = lambda a, b, **kw: _np.isin(a, b, **kw).ravel()
"""


def convert_scannet_script(source: Path, target: Path) -> Path:
    """Python 3 copies of ScanNet's three files in `target`; returns the main script's path."""
    with warnings.catch_warnings():  # lib2to3 is deprecated (still shipped with Python 3.11/3.12)
        warnings.simplefilter("ignore")
        from lib2to3 import refactor

        tool = refactor.RefactoringTool(refactor.get_fixers_from_package("lib2to3.fixes"))
        target.mkdir(parents=True, exist_ok=True)
        for name in SCRIPT_FILES:
            path = source / name
            if not path.is_file():
                raise SystemExit(f"{path}: missing; --scannet-script needs {', '.join(SCRIPT_FILES)}")
            code = str(tool.refactor_string(path.read_text(), name))
            if name == SCRIPT_FILES[0]:
                code = NUMPY_SHIM + code
            (target / name).write_text(code)
    return target / SCRIPT_FILES[0]


def prepare(scene_dir: Path, work: Path) -> tuple[Path, Path]:
    """(prediction folder, ground-truth folder) for the scene, as described in the module docstring."""
    scene = read_scene(scene_dir)
    pred, gt = work / "pred", work / "gt"
    if pred.exists():
        shutil.rmtree(pred)
    command = [sys.executable, "-m", "labelfree3d", "segment", str(scene_dir), "-m", "felzenszwalb"]
    command += ["--format", "scannet", "-o", str(pred), "--no-eval"]
    subprocess.run(command, check=True, capture_output=True, env=_env())
    index = pred / f"{scene.name}.txt"
    lines = [line.split() for line in index.read_text().splitlines() if line.strip()]
    index.write_text("".join(f"{mask} {CLASS_ID} {score}\n" for mask, _label, score in lines))
    write_scannet_gt_txt(scene.gt, gt / f"{scene.name}.txt")
    return pred, gt


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def time_process(command: list[str], repeats: int) -> dict[str, float]:
    """Median and min wall seconds of `repeats` fresh runs of `command` (after one untimed run)."""
    subprocess.run(command, check=True, capture_output=True, env=_env())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=_env())
        times.append(time.perf_counter() - start)
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3)}


def scannet_numbers(result_file: Path) -> tuple[float, float, float]:
    """(AP, AP50, AP25) of CLASS_ID from the script's result file (class,class id,ap,ap50,ap25)."""
    for line in result_file.read_text().splitlines()[1:]:
        parts = line.split(",")
        if int(parts[1]) == CLASS_ID:
            return float(parts[2]), float(parts[3]), float(parts[4])
    raise SystemExit(f"{result_file}: no row for class {CLASS_ID}")


def ours_numbers(command: list[str]) -> tuple[float, float, float]:
    report = json.loads(
        subprocess.run([*command, "--json"], check=True, capture_output=True, text=True, env=_env()).stdout
    )
    return report["ap"], report["ap50"], report["ap25"]


def mask_file_ms(mask_dir: Path, repeats: int) -> dict[str, float]:
    """Median over `repeats` passes of the mean ms per mask file: ScanNet's loader and ours."""
    import numpy as np

    files = sorted(mask_dir.glob("*.txt"))

    def scannet_load_ids(path: Path) -> np.ndarray:  # util_3d.load_ids, as the script reads masks
        with open(path) as handle:
            return np.array(handle.read().splitlines(), dtype=np.int64)

    out = {}
    for name, reader in (("scannet_load_ids_ms", scannet_load_ids), ("labelfree3d_ms", _read_mask_column)):
        passes = []
        for _ in range(repeats):
            start = time.perf_counter()
            for path in files:
                reader(path)
            passes.append((time.perf_counter() - start) / len(files) * 1e3)
        out[name] = round(statistics.median(passes), 3)
    out["files"] = len(files)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scannet-script", type=Path, required=True, help="folder with ScanNet's three files")
    parser.add_argument("--scene", type=Path, default=data_root() / "scannet" / "scene0000_00")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--work", type=Path, help="keep the inputs here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="also write the timings as JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_evaluate_cli_") as tmp:
        work = args.work or Path(tmp)
        script = convert_scannet_script(args.scannet_script, work / "scannet_py3")
        pred, gt = prepare(args.scene, work)
        gt_file = next(gt.glob("*.txt"))
        result_file = work / "scannet_result.txt"
        python = sys.executable
        commands = {
            "python -c 'import numpy'": [python, "-c", "import numpy"],
            "scannet_script": [python, str(script), "--pred_path", str(pred), "--gt_path", str(gt), "--output_file", str(result_file)],
            "labelfree3d_raw_scene": [python, "-m", "labelfree3d", "evaluate", str(pred), str(args.scene)],
            "labelfree3d_gt_txt": [python, "-m", "labelfree3d", "evaluate", str(pred), str(gt_file)],
        }  # fmt: skip
        load = os.getloadavg()
        timings = {name: time_process(command, args.repeats) for name, command in commands.items()}
        load_after = os.getloadavg()
        theirs = scannet_numbers(result_file)
        numbers = {"scannet_script": theirs}
        for name in ("labelfree3d_raw_scene", "labelfree3d_gt_txt"):
            numbers[name] = ours_numbers(commands[name])
            if max(abs(a - b) for a, b in zip(numbers[name], theirs)) > 1e-9:
                raise SystemExit(f"{name}: AP/AP50/AP25 {numbers[name]} != ScanNet's {theirs}")
        result = {
            "scene": str(args.scene),
            "masks": len(list((pred / "predicted_masks").glob("*.txt"))),
            "ap_ap50_ap25": numbers,
            "whole_process_s": timings,
            "mask_file": mask_file_ms(pred / "predicted_masks", max(args.repeats, 3)),
            "repeats": args.repeats,
            "load_average_1min": [round(load[0], 2), round(load_after[0], 2)],
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
            "commands": {name: " ".join(command) for name, command in commands.items()},
        }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
