"""Peak resident memory (RSS) per stage for 100k, 500k and 2M-point scenes: the growth curve.

    PYTHONPATH=. python bench/bench_memory.py [--points 100000 500000 2000000] [--methods felzenszwalb dbscan hdbscan]
        [--work DIR] [--timeout 600] [--json out.json]

Scenes: the first four ScanNet rooms of the VoteNet export (LABELFREE3D_DATA/scannet-votenet, 50,000
points each) laid out 2 x 2, 10 m apart (a 20 m floor: still a room scan, under the 30 m at which
`scan_kind` calls a cloud a LiDAR sweep); 100k points are a random subset, larger scenes add copies
of the rooms jittered by 5 mm (a denser scan of the same rooms). Written as x y z r g b .npy files.

Every stage runs in a fresh interpreter, which writes its own peak RSS (VmHWM of /proc/self/status,
the high-water mark of this process's memory since exec) to a file as it exits. ru_maxrss from
`os.wait4` / `resource.getrusage(RUSAGE_CHILDREN)` is not used: Linux carries the parent's peak
into a forked child's ru_maxrss, so every stage read at least the bench's own 330 MB.

* ``python``: the interpreter with labelfree3d, numpy and scipy imported (the floor of every stage);
* ``read``: `read_scene`;
* ``structure``: read + `scene_structure` (normals, floor / walls / ceiling);
* ``segment <method>``: the `labelfree3d segment SCAN -m METHOD -o OUT.npz` command: read,
  structure, segmentation and the write of the predictions;
* ``predict``: `labelfree3d predict SCAN --checkpoint tiny.safetensors`, with a 122k-parameter
  mask3d model (the tests' tiny spec, 4 cm voxels, random weights: the memory of inference does not
  depend on what the weights learned).

A stage that runs past `--timeout` seconds is reported as such (its peak so far is not known).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# runs a stage's code (argv[2], with the rest as its sys.argv) and writes VmHWM in KB to argv[1] at exit
WRAPPER = """
import atexit, sys
def _peak(path=sys.argv[1]):
    with open("/proc/self/status") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(path, "w") as out:
        out.write(kb)
atexit.register(_peak)
code = sys.argv[2]
sys.argv = [sys.argv[0]] + sys.argv[3:]
exec(compile(code, "<stage>", "exec"))
"""
CLI_CODE = "import sys; from labelfree3d.cli.main import main; sys.exit(main(sys.argv[1:]))"

STAGE_CODE = {
    "python": "import labelfree3d.io, numpy, scipy.spatial",
    "read": "import sys; from labelfree3d.io import read_scene; read_scene(sys.argv[1])",
    "structure": (
        "import sys; from labelfree3d.io import read_scene; from labelfree3d.segment.structure import scene_structure; "
        "scene_structure(read_scene(sys.argv[1]))"
    ),
}


def make_scene(points: int, path: Path, data: Path) -> Path:
    """Write the tiled-rooms scene of `points` points to `path` (x y z r g b float32 .npy)."""
    if path.exists():
        return path
    sources = sorted((data / "scannet-votenet").glob("*_vert.npy"))[:4]
    rooms = []
    for index, source in enumerate(sources):
        room = np.load(source).astype(np.float64)
        room[:, 0] += (index % 2) * 10.0
        room[:, 1] += (index // 2) * 10.0
        rooms.append(room)
    base = np.concatenate(rooms)
    rng = np.random.default_rng(0)
    if points <= base.shape[0]:
        scene = base[rng.choice(base.shape[0], points, replace=False)]
    else:
        copies = [base]
        while sum(c.shape[0] for c in copies) < points:
            jitter = np.zeros_like(base)
            jitter[:, :3] = rng.normal(0.0, 0.005, (base.shape[0], 3))
            copies.append(base + jitter)
        scene = np.concatenate(copies)[:points]
    np.save(path, scene.astype(np.float32))
    return path


def make_checkpoint(path: Path) -> Path:
    """A tiny mask3d checkpoint (random weights) for the predict stage."""
    if path.exists():
        return path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from _learning import tiny_spec

    from labelfree3d.models import build_model
    from labelfree3d.models.checkpoint import save_checkpoint

    save_checkpoint(path, build_model(tiny_spec()).eval())
    return path


def peak_rss(code: str, arguments: list[str], timeout: float, peak_file: Path) -> tuple[float | None, float, int]:
    """(peak RSS in MB or None on timeout, wall seconds, exit status) of `code` run in a fresh interpreter."""
    peak_file.unlink(missing_ok=True)
    started = time.perf_counter()
    command = [sys.executable, "-c", WRAPPER, str(peak_file), code, *arguments]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, errors = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        return None, time.perf_counter() - started, -9
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        last = errors.decode(errors="replace").strip().splitlines()[-1:]
        print(f"  exit {child.returncode}: {' '.join(last)}", file=sys.stderr)
    peak = float(peak_file.read_text()) / 1024.0 if peak_file.exists() else None
    return peak, seconds, child.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[100_000, 500_000, 2_000_000])
    parser.add_argument("--methods", nargs="+", default=["felzenszwalb", "dbscan", "hdbscan"])
    parser.add_argument("--stages", nargs="+", default=["python", "read", "structure", "segment", "predict"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/labelfree3d_bench_memory"))
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    data = Path(os.environ.get("LABELFREE3D_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for points in args.points:
        scene = make_scene(points, args.work / f"rooms_{points}.npy", data)
        stages: list[tuple[str, str, list[str]]] = []
        for stage in args.stages:
            if stage in STAGE_CODE:
                stages.append((stage, STAGE_CODE[stage], [str(scene)]))
            elif stage == "segment":
                for method in args.methods:
                    output = args.work / f"rooms_{points}_{method}.npz"
                    stages.append((f"segment {method}", CLI_CODE, ["segment", str(scene), "-m", method, "-o", str(output)]))
            elif stage == "predict":
                checkpoint = make_checkpoint(args.work / "tiny_mask3d.safetensors")
                output = args.work / f"rooms_{points}_predict.npz"
                command = ["predict", str(scene), "--checkpoint", str(checkpoint), "-o", str(output), "--device", "cpu"]
                stages.append(("predict", CLI_CODE, command))
        for name, code, arguments in stages:
            megabytes, seconds, code = peak_rss(code, arguments, args.timeout, args.work / "peak_kb.txt")
            row = {"points": points, "stage": name, "peak_rss_mb": megabytes, "seconds": round(seconds, 1), "exit": code}
            rows.append(row)
            shown = "timeout" if megabytes is None else f"{megabytes:.0f} MB"
            print(f"{points:>9} {name:<22} {shown:>9} {seconds:7.1f} s exit {code}", flush=True)
    print()
    print("| stage | " + " | ".join(f"{p:,} points" for p in args.points) + " |")
    print("|---|" + "---|" * len(args.points))
    for name in dict.fromkeys(row["stage"] for row in rows):
        cells = []
        for points in args.points:
            match = [r for r in rows if r["stage"] == name and r["points"] == points]
            r = match[0] if match else None
            if r is None:
                cells.append("")
            elif r["peak_rss_mb"] is None:
                cells.append(f"> {r['seconds']:.0f} s (stopped)")
            else:
                cells.append(f"{r['peak_rss_mb']:.0f} MB, {r['seconds']:.0f} s" + ("" if r["exit"] == 0 else f" (exit {r['exit']})"))
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
