"""`labelfree3d segment INPUT --method NAME` and `labelfree3d methods`."""

from __future__ import annotations

from pathlib import Path

import typer

from labelfree3d.cli.common import console, parse_settings, status_lines


def _format_default(value: object) -> str:
    return "None" if value is None else repr(value) if isinstance(value, str) else str(value)


def register(app: typer.Typer) -> None:
    @app.command()
    def segment(
        source: Path = typer.Argument(..., help="Scan file or folder (PLY, PCD, OSD, LAS, NPY/NPZ, ScanNet, S3DIS, ...)."),
        method: str = typer.Option(
            None,
            "--method",
            "-m",
            help="Registered method (see `labelfree3d methods`); default by kind of scan: felzenszwalb for rooms and tabletop frames, "
            "plane_euclidean for LiDAR sweeps.",
        ),
        settings: list[str] = typer.Option(None, "--set", help="Method parameter key=value (repeatable)."),
        output: Path = typer.Option(
            None, "--output", "-o", help="Output file (npz, ply) or folder (scannet); default <scene>_<method>.<ext> here."
        ),
        out_format: str = typer.Option(
            None, "--format", help="npz (predictions), scannet (benchmark folder) or ply (coloured); default from -o, else npz."
        ),
        input_format: str = typer.Option(None, "--input-format", help="Reader name; detected when omitted."),
        no_eval: bool = typer.Option(False, "--no-eval", help="Skip AP / AP50 / AP25 even when the scan has ground truth."),
    ) -> None:
        """Segment a scan into instances with a training-free method and save the masks."""
        from labelfree3d.segment import segment_file

        with status_lines(f"segmenting {source.name} with {method or 'the default method for its kind'}"):
            run = segment_file(
                source,
                method,
                parse_settings(settings),
                output=output,
                format=out_format,
                input_format=input_format,
                evaluate=not no_eval,
            )
        console.print(
            f"{run.scene.name}: {run.method} found {len(run.masks)} masks in {run.scene.num_points} points "
            f"({run.seconds:.2f} s)"
        )
        if run.metrics is not None:
            values = "  ".join(f"{key.upper()} {100 * value:.1f}" for key, value in run.metrics.items())
            console.print(f"class-agnostic (%): {values}")
        console.print(f"wrote {run.output} ({run.format})")

    @app.command()
    def methods(
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    ) -> None:
        """List the registered segmentation methods with their parameters, defaults and score rule."""
        from labelfree3d.segment import describe_methods

        described = describe_methods()
        if as_json:
            console.json(described)
            return
        for entry in described:
            console.print(f"[bold]{entry['name']}[/bold]: {entry['summary']}")
            for parameter in entry["parameters"]:
                default = _format_default(parameter["default"])
                console.print(f"  {parameter['name']}: {parameter['type']} = {default}", markup=False)
            console.print(f"  score: {entry['score_rule']}", markup=False)
