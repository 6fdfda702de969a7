"""`labelfree3d fit --recipe NAME DATA -o RUN`: a paper's whole pipeline, from unlabelled scans to a model."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.table import Table

from labelfree3d.cli.common import console, parse_settings


def register(app: typer.Typer) -> None:
    @app.command()
    def fit(
        data: Path = typer.Argument(..., help="Training scans: a folder, a scan list (.txt) or a scan."),
        recipe: str = typer.Option(..., "--recipe", "-r", help="unscene3d, freepoint or segment3d (docs/recipes.md)."),
        run: Path = typer.Option(..., "--output", "-o", help="Run folder; the same command again resumes it."),
        preset: str = typer.Option("small", "--preset", help="small (compact model, CPU) or paper (the paper's sizes, GPUs)."),
        settings: list[str] = typer.Option(None, "--set", help="Recipe parameter key=value, e.g. cycles=3 or train.set.optim.max_steps=50."),
        eval_data: Path = typer.Option(None, "--eval", help="Scans with ground truth to score every stage on (never trained on)."),
        workers: int = typer.Option(None, "--workers", help="Worker processes for pseudo-labelling (default: one per core)."),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    ) -> None:
        """Pseudo-label, train and self-train a recipe; the final model is RUN/model.safetensors."""
        from labelfree3d.recipes import fit as run_fit

        result = run_fit(
            recipe, data, run, preset=preset, settings=parse_settings(settings), eval_data=eval_data, workers=workers,
            device=device, progress=console.error, log=console.err,
        )  # fmt: skip
        if int(os.environ.get("RANK", "0")) != 0:
            return  # under torchrun the table is rank 0's
        table = Table(title=f"{recipe} ({preset}) in {run}")
        for column in ("stage", "what", "AP", "AP50", "AP25", "seconds"):
            table.add_column(column, justify="left" if column in ("stage", "what") else "right")
        for row in result.table():
            cells = ["-" if row[k] is None else f"{100 * row[k]:.1f}" for k in ("ap", "ap50", "ap25")]
            table.add_row(row["stage"], row["what"], *cells, f"{row['seconds']:.0f}")
        console.print(table)
        console.print(f"model: {result.model}")
