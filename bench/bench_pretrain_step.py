"""Time one PointINS pre-training step and its parts (views, teacher, ODR, SCR, the rest) and print a markdown table.

    PYTHONPATH=. python bench/bench_pretrain_step.py [--scan PATH ...] [--preset small|indoor]
        [--device auto|cpu|cuda] [--steps 3] [--threads N]

Per scan, a batch of one view pair: the dataset draws the views (data), the teacher's forward
pass, ODR (`align_offset_magnitudes`) and SCR (`spatial_clustering_targets`) on its outputs, and
the whole `train_step` (teacher, targets, student forward and backward, AdamW, EMA). The first
step is a warm-up and is not counted; medians of the rest.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import numpy as np
import torch

from labelfree3d.io.paths import data_root
from labelfree3d.models.pointins.regularize import align_offset_magnitudes, spatial_clustering_targets
from labelfree3d.models.voxelize import collate
from labelfree3d.train.pretrain import Pretrainer, pretrain_preset


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = data_root()
    parser.add_argument("--scan", nargs="+", default=[str(root / "osd" / "learn" / "learn24.pcd"), str(root / "scannet" / "scene0000_00")])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    rows = []
    for scan in args.scan:
        with tempfile.TemporaryDirectory() as tmp:
            overrides = {"train": [scan], "output_dir": tmp, "device": args.device, "progress": False, "optim.max_steps": 100}
            if args.threads:
                overrides["cpu_threads"] = args.threads
            config = pretrain_preset(args.preset, overrides)
            trainer = Pretrainer(config)
            device = trainer.device
            times: dict[str, list[float]] = {k: [] for k in ("data", "teacher", "odr", "scr", "step")}
            voxels = []
            trainer.step = int(0.5 * trainer.total_steps)  # past the offset warm-up: the whole step
            for repeat in range(args.steps + 1):
                started = time.perf_counter()
                trainer.dataset.set_epoch(repeat)
                pair = trainer.dataset[0]
                data = time.perf_counter() - started
                _sync(device)
                started = time.perf_counter()
                with torch.no_grad():
                    out = trainer.teacher(collate([pair.teacher]).to(device))
                _sync(device)
                teacher = time.perf_counter() - started
                offsets = out.offsets.float().cpu().numpy().astype(np.float64)
                started = time.perf_counter()
                aligned = align_offset_magnitudes(offsets, trainer.prior)
                odr = time.perf_counter() - started
                scr_config = config.scr
                started = time.perf_counter()
                spatial_clustering_targets(pair.teacher_positions, aligned, out.features.float().cpu().numpy(),
                                           num_segments=scr_config.num_segments, kmeans_iterations=scr_config.kmeans_iterations,
                                           knn=scr_config.knn, max_distance=scr_config.max_distance, min_size=scr_config.min_size)  # fmt: skip
                scr = time.perf_counter() - started
                _sync(device)
                started = time.perf_counter()
                trainer.train_step([pair])
                _sync(device)
                step = time.perf_counter() - started
                if repeat:
                    for key, value in zip(times, (data, teacher, odr, scr, step)):
                        times[key].append(value)
                    voxels.append(pair.teacher.num_voxels)
            hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()}, {torch.get_num_threads()} thread(s)"
            rows.append((scan.rsplit("/", 1)[-1], int(statistics.median(voxels)), {k: statistics.median(v) for k, v in times.items()}, hardware))
    print(f"| scan | teacher voxels | data s | teacher forward s | ODR s | SCR s | whole step s | hardware (preset {args.preset}) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, count, t, hardware in rows:
        print(f"| {name} | {count} | {t['data']:.3f} | {t['teacher']:.3f} | {t['odr']:.3f} | {t['scr']:.3f} | {t['step']:.3f} | {hardware} |")


if __name__ == "__main__":
    main()
