"""`labelfree3d predict INPUT --checkpoint CKPT`: instance masks from a trained model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from labelfree3d.cli.common import console, exit_if_failed, parse_settings


def register(app: typer.Typer) -> None:
    @app.command()
    def predict(
        input: Path = typer.Argument(..., help="A scan (file or scene folder) or a folder of scans."),
        checkpoint: Path = typer.Option(..., "--checkpoint", help="Checkpoint (.safetensors) written by `labelfree3d train`."),
        output: Path = typer.Option(None, "--output", "-o", help="Output .npz (one scan) or folder (default: predictions/)."),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
        settings: list[str] = typer.Option(None, "--set", help="Inference setting key=value, e.g. dbscan_split=true (repeatable; see docs/training.md)."),
        scan_format: str = typer.Option(None, "--format", help="Reader name for the scans; detected when omitted."),
        workers: int = typer.Option(1, "--workers", help="Worker processes, each with its own copy of the model (1: this process)."),
        threads_per_worker: int = typer.Option(None, "--threads-per-worker", help="Thread cap per scan (default: cores // workers)."),
    ) -> None:
        """Predict full-resolution instance masks and write them as .npz prediction files."""
        from labelfree3d.batch.predict import predict_scans
        from labelfree3d.errors import InputError
        from labelfree3d.io.scans import list_scans

        if not checkpoint.is_file():  # before listing the scans: the model is what a typo most often names
            raise InputError("no such checkpoint file", checkpoint)
        scans = list_scans(input, format=scan_format)
        single = len(scans) == 1 and not (input.is_dir() and scans[0] != input)
        if output is None:
            output = Path("predictions")
        to_file = single and output.suffix == ".npz"
        run = predict_scans(
            scans, checkpoint, output, parse_settings(settings), device=device, input_format=scan_format, to_file=to_file,
            workers=workers, threads_per_worker=threads_per_worker, progress=console.error,
        )  # fmt: skip
        table = Table(title=f"predictions ({checkpoint.name})")
        for column in ("scene", "points", "masks", "seconds", "file"):
            table.add_column(column, justify="left" if column in ("scene", "file") else "right")
        for value in run.values():
            table.add_row(value["scene"], str(value["points"]), str(value["masks"]), f"{value['seconds']:.2f}", value["file"])
        console.print(table)
        exit_if_failed([result.error for result in run.failed], f"{len(run.failed)} of {len(run.results)} scan(s) failed:")
