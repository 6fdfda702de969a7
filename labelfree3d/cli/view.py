"""`labelfree3d view SCENE [PRED ...]`: a self-contained HTML viewer (and optionally a PNG sheet)."""

from __future__ import annotations

from pathlib import Path

import typer

from labelfree3d.cli.common import console


def register(app: typer.Typer) -> None:
    @app.command()
    def view(
        scene_path: Path = typer.Argument(..., metavar="SCENE", help="Scan file or folder (anything `labelfree3d info` reads)."),
        prediction_paths: list[Path] = typer.Argument(None, metavar="[PRED]...", help="Prediction files over the scan: our .npz or ScanNet benchmark <scene>.txt."),
        output: Path = typer.Option(None, "--output", "-o", help="HTML file to write (default: <scene>_view.html here)."),
        format: str = typer.Option(None, "--format", "-f", help="Reader name for SCENE; detected when omitted."),
        max_points: int = typer.Option(None, "--max-points", help="Show a random sample of this many points when the scan is larger (default 2,000,000)."),
        png: Path = typer.Option(None, "--png", help="Also write a PNG sheet: every layer from the top and obliquely."),
        title: str = typer.Option(None, "--title", help="Page title (default: the scene's name)."),
    ) -> None:
        """Write one HTML file that shows the scan offline in any browser, with switchable layers.

        Layers: RGB, ground truth, each prediction set, superpoints and per-mask confidence.
        Orbit, zoom and pan; click a point for its ids and scores; toggle masks; compare
        two layers side by side or flip between them.
        """
        from labelfree3d.io import read_scene
        from labelfree3d.io.atomic import check_output
        from labelfree3d.viz import DEFAULT_MAX_POINTS, read_prediction_sets, render_sheet, write_png, write_viewer

        inputs = [scene_path, *(prediction_paths or [])]
        for written_path in (output, png):
            if written_path is not None:
                check_output(written_path, inputs=inputs)
        scene = read_scene(scene_path, format=format)
        predictions = read_prediction_sets(prediction_paths or [], scene.num_points)
        target = output if output is not None else Path(f"{scene.name}_view.html")
        with console.error.status("writing the viewer…"):
            budget = DEFAULT_MAX_POINTS if max_points is None else max_points
            written = write_viewer(scene, predictions, target, max_points=budget, title=title)
        shape = f"{written.shown_points:,} points" + (f", {written.faces:,} faces" if written.faces else "")
        # no wrapping or markup: paths must survive copy and paste
        console.print(
            f"wrote {written.path} ({written.size_bytes / 1e6:.1f} MB; {shape}; layers: {', '.join(written.layers)})",
            soft_wrap=True,
            markup=False,
        )
        if written.note:
            console.err(f"note: {written.note}")
        if png is not None:
            with console.error.status("rendering the PNG sheet…"):
                image = render_sheet(scene, predictions)
            console.print(f"wrote {write_png(image, png)} ({image.shape[1]}x{image.shape[0]} pixels)", soft_wrap=True, markup=False)
