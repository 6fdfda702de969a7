"""`labelfree3d convert IN OUT`: re-save a scan in another format."""

from __future__ import annotations

from pathlib import Path

import typer

from labelfree3d.cli.common import console
from labelfree3d.io import read_scene, write_scene
from labelfree3d.io.atomic import check_output


def register(app: typer.Typer) -> None:
    @app.command()
    def convert(
        source: Path = typer.Argument(..., help="Input scan file or folder."),
        target: Path = typer.Argument(..., help="Output file: .ply (viewable, GT as vertex fields) or .npz (lossless)."),
        format: str = typer.Option(None, "--format", "-f", help="Input reader name; detected when omitted."),
    ) -> None:
        """Convert a scan (with its ground truth) to PLY or our NPZ scene archive."""
        check_output(target, inputs=[source])
        scene = read_scene(source, format=format)
        written = write_scene(scene, target)
        console.print(f"wrote {written} ({scene.num_points} points)")
