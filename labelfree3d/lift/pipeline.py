"""End-to-end 2D -> 3D runs behind `labelfree3d lift`: inputs in, prediction files out.

Two kinds of input:

* an RGB-D sequence with poses (`run_sequence`): the scene is a given mesh or the TSDF fusion of
  the frames; every `frame_stride`-th frame's 2D masks are lifted onto the scene's points with
  the visibility test and merged SAM3D-style; optionally the same frames' partial clouds with
  their masks are written as Segment3D stage-1 samples, and lifted 2D features are averaged
  onto the points;
* organized clouds, e.g. OSD's Kinect PCDs (`run_organized`): each cloud is its own RGB-D
  frame, so its 2D masks land on its points through the pixel index, one to one.

Outputs are written atomically into one folder (names in `docs/lifting.md`), as our `.npz`
prediction files that `labelfree3d evaluate` reads and PLY files any viewer opens.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelfree3d.errors import InputError, ParameterError
from labelfree3d.io import (
    atomic_path,
    read_scene,
    write_predictions,
    write_scene,
    write_segmentation_ply,
    write_text_atomic,
)
from labelfree3d.lift.dataset import Stage1Session, Stage1Writer
from labelfree3d.lift.fusion import TSDFFusion
from labelfree3d.lift.lifting import (
    FrameLift,
    ImageFeatureExtractor,
    lift_features,
    lift_frame_to_scene,
    lift_to_points,
)
from labelfree3d.lift.masks2d import MaskGenerator
from labelfree3d.lift.merge import Sam3DMerger
from labelfree3d.lift.organized import is_organized, organized_frame
from labelfree3d.structures import InstanceMasks, Scene

__all__ = ["LiftRun", "LiftPipeline", "mask_statistics"]

# progress(description, total) -> advance(n): the CLI passes a rich progress bar
ProgressFactory = Callable[[str, int], Callable[[int], Any]]


def no_progress(description: str, total: int) -> Callable[[int], Any]:
    return lambda n: None


def mask_statistics(masks: InstanceMasks) -> dict[str, Any]:
    """Ground-truth-free facts about masks: count, sizes, coverage, scores (for scenes without GT)."""
    sizes = masks.sizes
    covered = int(np.count_nonzero(masks.coverage())) if len(masks) else 0
    return {
        "masks": len(masks),
        "points": masks.num_points,
        "covered_points": covered,
        "coverage": covered / max(masks.num_points, 1),
        "size_min": int(sizes.min()) if len(masks) else 0,
        "size_median": float(np.median(sizes)) if len(masks) else 0.0,
        "size_max": int(sizes.max()) if len(masks) else 0,
        "score_min": float(masks.scores.min()) if len(masks) else None,
        "score_max": float(masks.scores.max()) if len(masks) else None,
    }


@dataclass
class LiftRun:
    """What a run wrote and measured.

    Attributes:
        outputs: role -> path of every file written.
        statistics: scene name -> `mask_statistics` of its final masks.
        timings: step -> seconds.
        frames: frames whose masks were generated (or samples reused).
        notes: human-readable remarks (skipped frames, resumed samples).
    """

    outputs: dict[str, Path] = field(default_factory=dict)
    statistics: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    frames: int = 0
    notes: list[str] = field(default_factory=list)


def _check_number(value: Any, name: str, *, integer: bool = False, minimum: int | None = None, positive: bool = False) -> None:
    """Refuse a non-number, a non-integer where one is needed, or a value out of range (ParameterError)."""
    import math
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ParameterError(f"LiftPipeline.{name} must be a finite number, got {value!r}")
    if integer and float(value) != int(value):
        raise ParameterError(f"LiftPipeline.{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ParameterError(f"LiftPipeline.{name} must be >= {minimum}, got {value!r}")
    if positive and value <= 0:
        raise ParameterError(f"LiftPipeline.{name} must be > 0, got {value!r}")


@dataclass
class LiftPipeline:
    """Settings of a 2D -> 3D run (see the module docs).

    Attributes:
        generator: the 2D mask generator.
        frame_stride: every `frame_stride`-th frame of a sequence is used (Segment3D: 25 on
            raw 30 Hz ScanNet sequences).
        samples: also write Segment3D stage-1 samples (`<out>/stage1/`).
        scene_masks: lift onto the scene and merge (sequences) / write predictions (clouds).
        fusion: TSDF settings when a sequence comes without a mesh.
        depth_tolerance: visibility tolerance of scene lifting, metres.
        merger: SAM3D merging settings.
        superpoints: snap merged masks to mesh superpoints (ScanNet's segmentator) by majority.
        min_points: lifted per-frame masks with fewer points are dropped (organized clouds:
            2D masks lying on pixels without depth).
        resolve_overlaps: organized clouds: one mask per point by the nested-mask rule instead
            of keeping every (possibly overlapping) lifted mask.
        features: optional 2D feature extractor averaged onto the scene's points.
        max_depth: depth cap (metres) of stage-1 samples (None = none).
    """

    generator: MaskGenerator
    frame_stride: int = 25
    samples: bool = False
    scene_masks: bool = True
    fusion: TSDFFusion = field(default_factory=TSDFFusion)
    depth_tolerance: float = 0.05
    merger: Sam3DMerger = field(default_factory=Sam3DMerger)
    superpoints: bool = False
    min_points: int = 1
    resolve_overlaps: bool = False
    features: ImageFeatureExtractor | None = None
    max_depth: float | None = None

    def __post_init__(self) -> None:
        _check_number(self.frame_stride, "frame_stride", integer=True, minimum=1)
        _check_number(self.min_points, "min_points", integer=True, minimum=1)
        _check_number(self.depth_tolerance, "depth_tolerance", positive=True)
        if self.max_depth is not None:
            _check_number(self.max_depth, "max_depth", positive=True)

    def _stage1(self, out_dir: Path, name: str, frame_stride: int) -> Stage1Session:
        writer = Stage1Writer(self.generator, frame_stride=frame_stride, max_depth=self.max_depth)
        return writer.open(out_dir / "stage1", sequence=name)

    # ------------------------------------------------------------------ RGB-D sequences
    def run_sequence(
        self,
        sequence: Scene,
        out_dir: str | Path,
        mesh: Scene | None = None,
        progress: ProgressFactory = no_progress,
    ) -> LiftRun:
        """Lift a posed RGB-D sequence's masks onto its scene (fused unless `mesh` is given).

        Writes `<name>_mesh.ply` (the scene the predictions index), `<name>.npz` (SAM3D-merged
        masks), `<name>_votes.npz` (every per-frame lifted mask), `<name>_segmentation.ply`,
        `<name>_summary.json`, optionally `<name>_features2d.npz` and `stage1/`.
        """
        if sequence.frames is None or len(sequence.frames) == 0:
            raise InputError("the input has no RGB-D frames", sequence.source)
        out_dir = Path(out_dir)
        run = LiftRun()
        name = sequence.name
        frames = sequence.frames
        if mesh is None and self.scene_masks:
            started = time.perf_counter()
            advance = progress("fusing frames (TSDF)", len(frames))
            mesh, report = self.fusion.fuse(
                frames, name=name, progress=advance, source=None if sequence.source is None else str(sequence.source)
            )
            run.timings["fusion"] = time.perf_counter() - started
            if report.skipped_no_pose:
                run.notes.append(f"{report.skipped_no_pose} frames without pose were not fused")
        if mesh is not None:
            run.outputs["mesh"] = write_scene(mesh, out_dir / f"{name}_mesh.ply")
        selected = frames[:: self.frame_stride]
        session = self._stage1(out_dir, name, self.frame_stride) if self.samples else None
        lifts: list[FrameLift] = []
        started = time.perf_counter()
        advance = progress("masks + lifting", len(selected))
        for position, frame_name in enumerate(selected.frame_names):
            advance(1)
            need_scene = self.scene_masks and mesh is not None
            have_sample = session is not None and session.exists(frame_name)
            if not need_scene and (session is None or have_sample):
                continue  # resume: nothing left to do for this frame
            frame = selected[position]
            masks = self.generator.generate(frame)
            run.frames += 1
            if need_scene and frame.camera_to_world is not None:
                lifts.append(lift_frame_to_scene(mesh.points, frame, masks, self.depth_tolerance))
            if session is not None and not have_sample:
                session.add(frame, masks)
        run.timings["masks_and_lifting"] = time.perf_counter() - started
        if session is not None:
            summary = session.close()
            run.outputs["stage1"] = summary.index  # type: ignore[assignment]
            if summary.skipped_existing:
                run.notes.append(f"stage1: {summary.skipped_existing} samples already existed (resumed)")
        if self.scene_masks and mesh is not None:
            if not lifts:
                raise InputError("no selected frame has a pose: nothing to lift onto the scene", sequence.source)
            started = time.perf_counter()
            votes = [lift.to_masks(mesh.num_points, self.min_points) for lift in lifts]
            superpoints = self._superpoints(mesh) if self.superpoints else None
            merged = self.merger.merge(lifts, mesh.num_points, superpoints)
            run.timings["merge"] = time.perf_counter() - started
            run.outputs["predictions"] = write_predictions(
                merged, out_dir / f"{name}.npz", scene_name=name, method=f"sam3d-merge({self.generator.name})"
            )
            run.outputs["votes"] = write_predictions(
                InstanceMasks.concatenate(votes),
                out_dir / f"{name}_votes.npz",
                scene_name=name,
                method=f"lifted-votes({self.generator.name})",
            )
            run.outputs["segmentation"] = write_segmentation_ply(mesh, merged, out_dir / f"{name}_segmentation.ply")
            run.statistics[name] = mask_statistics(merged)
            if self.features is not None:
                started = time.perf_counter()
                advance = progress("lifting 2D features", len(selected))
                features, counts = lift_features(
                    mesh.points, selected, self.features, self.depth_tolerance, progress=advance
                )
                run.timings["features"] = time.perf_counter() - started
                path = out_dir / f"{name}_features2d.npz"
                with atomic_path(path) as tmp:
                    with open(tmp, "wb") as handle:
                        np.savez_compressed(handle, features=features, counts=counts)
                run.outputs["features"] = path
            run.outputs["summary"] = self._write_summary(out_dir / f"{name}_summary.json", run)
        return run

    @staticmethod
    def _superpoints(mesh: Scene) -> np.ndarray:
        if mesh.superpoints is not None:
            return mesh.superpoints
        if not mesh.is_mesh:
            raise InputError("superpoints need a mesh (faces) or a scene that carries them", mesh.source)
        from labelfree3d.geometry import mesh_superpoints

        return mesh_superpoints(mesh.points, mesh.faces)

    # ------------------------------------------------------------------ organized clouds
    def run_organized(
        self, paths: Sequence[Path], out_dir: str | Path, progress: ProgressFactory = no_progress
    ) -> LiftRun:
        """Lift each organized cloud's own 2D masks onto its points; one prediction file per cloud.

        Writes `<cloud>.npz` per cloud, `summary.json`, and optionally `stage1/` (each cloud one
        frame; `frame_stride` does not apply: every cloud is a separate capture).
        """
        out_dir = Path(out_dir)
        run = LiftRun()
        session = self._stage1(out_dir, out_dir.name, 1) if self.samples else None
        started = time.perf_counter()
        advance = progress("masks + lifting", len(paths))
        for path in paths:
            advance(1)
            scene = read_scene(path)
            if not is_organized(scene):
                raise InputError("not an organized cloud (no image layout): cannot treat it as an RGB-D frame", path)
            frame = organized_frame(scene)
            have_sample = session is not None and session.exists(frame.name)
            if not self.scene_masks and (session is None or have_sample):
                continue
            masks = self.generator.generate(frame)
            run.frames += 1
            if self.scene_masks:
                lifted = lift_to_points(masks, scene.metadata["pixel_index"], self.min_points, self.resolve_overlaps)
                run.outputs[f"predictions:{scene.name}"] = write_predictions(
                    lifted,
                    out_dir / f"{scene.name}.npz",
                    scene_name=scene.name,
                    method=f"lifted({self.generator.name})",
                )
                run.statistics[scene.name] = mask_statistics(lifted)
            if session is not None and not have_sample:
                session.add(frame, masks)
        run.timings["masks_and_lifting"] = time.perf_counter() - started
        if session is not None:
            run.outputs["stage1"] = session.close().index  # type: ignore[assignment]
        run.outputs["summary"] = self._write_summary(out_dir / "summary.json", run)
        return run

    def _write_summary(self, path: Path, run: LiftRun) -> Path:
        payload = {
            "generator": self.generator.name,
            "generator_params": {
                k: str(v) if isinstance(v, Path) else v for k, v in self.generator.get_params().items()
            },
            "frame_stride": self.frame_stride,
            "frames": run.frames,
            "timings_s": {k: round(v, 3) for k, v in run.timings.items()},
            "statistics": run.statistics,
            "notes": run.notes,
        }
        return write_text_atomic(path, json.dumps(payload, indent=1, default=str))
