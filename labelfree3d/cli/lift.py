"""`labelfree3d lift INPUT --masks sam|classic -o OUT`: 2D masks lifted to 3D."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from labelfree3d.cli.common import console, parse_settings


@contextlib.contextmanager
def progress_bars() -> Iterator[Callable[[str, int], Callable[[int], Any]]]:
    """A `progress(description, total) -> advance(n)` factory drawing rich bars on stderr."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console.error,
        transient=False,
    ) as bars:

        def factory(description: str, total: int) -> Callable[[int], Any]:
            task = bars.add_task(description, total=total)
            return lambda n: bars.advance(task, n)

        yield factory


def register(app: typer.Typer) -> None:
    @app.command()
    def lift(
        source: Path = typer.Argument(
            ..., help="RGB-D sequence folder, an organized cloud (OSD .pcd) or a folder of them."
        ),
        output: Path = typer.Option(..., "--output", "-o", help="Output folder."),
        masks: str = typer.Option("classic", "--masks", help="2D mask generator: sam or classic (weight-free)."),
        scene: Path = typer.Option(
            None, "--scene", help="Mesh / cloud of the sequence to lift onto (default: TSDF-fuse the frames)."
        ),
        sam_checkpoint: Path = typer.Option(
            None, "--sam-checkpoint", help="Local SAM checkpoint (.pth) for --masks sam."
        ),
        settings: list[str] = typer.Option(None, "--set", help="Mask generator parameter key=value (repeatable)."),
        frame_stride: int = typer.Option(
            None, "--frame-stride", help="Use every N-th frame (default 25, Segment3D's; clouds: all)."
        ),
        samples: bool = typer.Option(
            False,
            "--samples/--no-samples",
            help="Write Segment3D stage-1 samples (partial clouds + mask ids) to OUT/stage1.",
        ),
        scene_masks: bool = typer.Option(
            True,
            "--scene-masks/--no-scene-masks",
            help="Lift onto the scene and merge (SAM3D) / write per-cloud predictions.",
        ),
        merge_ratio: float = typer.Option(0.5, "--merge-ratio", help="SAM3D merge threshold: overlap / smaller mask."),
        min_points: int = typer.Option(
            50, "--min-points", help="Merged scene masks with fewer points are dropped (SAM3D: 50)."
        ),
        superpoints: bool = typer.Option(
            False, "--superpoints", help="Snap merged masks to mesh superpoints by majority vote."
        ),
        depth_tolerance: float = typer.Option(0.05, "--depth-tolerance", help="Visibility test tolerance, metres."),
        features: str = typer.Option(
            None,
            "--features",
            help="Also lift 2D features: colortexture, or a local checkpoint (DINO ViT / TorchScript).",
        ),
        voxel: float = typer.Option(0.02, "--voxel", help="TSDF voxel edge when fusing, metres."),
        trunc: float = typer.Option(0.08, "--trunc", help="TSDF truncation when fusing, metres."),
        max_depth: float = typer.Option(4.0, "--max-depth", help="Depth cap when fusing, metres."),
    ) -> None:
        """Generate 2D masks per frame and lift them to 3D: scene masks (SAM3D merge), per-cloud predictions,
        stage-1 samples."""
        from labelfree3d.features.image import ColorTextureFeatures, load_image_features
        from labelfree3d.io import read_scene
        from labelfree3d.lift.commands import resolve_lift_input
        from labelfree3d.lift.fusion import TSDFFusion
        from labelfree3d.lift.masks2d import make_mask_generator
        from labelfree3d.lift.merge import Sam3DMerger
        from labelfree3d.lift.pipeline import LiftPipeline

        options = parse_settings(settings)
        if masks == "sam":
            options.setdefault("checkpoint", None if sam_checkpoint is None else str(sam_checkpoint))
        elif sam_checkpoint is not None:
            console.err("note: --sam-checkpoint is ignored unless --masks sam")
        target = resolve_lift_input(source)
        generator = make_mask_generator(masks, **options)
        extractor = None
        if features == "colortexture":
            extractor = ColorTextureFeatures()
        elif features:
            extractor = load_image_features(features)
        pipeline = LiftPipeline(
            generator,
            frame_stride=frame_stride if frame_stride is not None else (25 if target.kind == "sequence" else 1),
            samples=samples,
            scene_masks=scene_masks,
            fusion=TSDFFusion(voxel_length=voxel, sdf_trunc=trunc, max_depth=max_depth),
            depth_tolerance=depth_tolerance,
            merger=Sam3DMerger(ratio=merge_ratio, min_points=min_points),
            superpoints=superpoints,
            features=extractor,
        )
        with progress_bars() as progress:
            if target.kind == "sequence":
                mesh = None if scene is None else read_scene(scene)
                run = pipeline.run_sequence(target.sequence, output, mesh=mesh, progress=progress)
            else:
                if scene is not None:
                    console.err("note: --scene is ignored for organized clouds (each cloud is its own scene)")
                run = pipeline.run_organized(target.clouds, output, progress=progress)
        _print_run(run)


def _print_run(run: Any) -> None:
    if run.statistics:
        table = Table(title="lifted masks (no ground truth needed)")
        for column in ("scene", "masks", "points", "coverage %", "median size", "largest"):
            table.add_column(column, justify="left" if column == "scene" else "right")
        rows = list(run.statistics.items())
        for name, stats in rows[:20]:
            table.add_row(
                name,
                str(stats["masks"]),
                str(stats["points"]),
                f"{100 * stats['coverage']:.1f}",
                f"{stats['size_median']:.0f}",
                str(stats["size_max"]),
            )
        if len(rows) > 20:
            table.caption = f"... and {len(rows) - 20} more scenes (see summary.json)"
        console.print(table)
    timings = ", ".join(f"{key} {value:.1f} s" for key, value in run.timings.items())
    console.print(f"{run.frames} frames processed; {timings}", soft_wrap=True)
    for note in run.notes:
        console.err(f"note: {note}")
    for role, path in run.outputs.items():
        if not role.startswith("predictions:"):
            console.print(f"{role:>13}: {path}", soft_wrap=True)
    per_cloud = [p for r, p in run.outputs.items() if r.startswith("predictions:")]
    if per_cloud:
        console.print(f"  predictions: {len(per_cloud)} files in {per_cloud[0].parent}", soft_wrap=True)
