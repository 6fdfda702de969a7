"""`labelfree3d pretrain DATA -o RUN --preset indoor|outdoor|small`: PointINS self-supervised pre-training."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from labelfree3d.cli.common import console, parse_settings


def register(app: typer.Typer) -> None:
    @app.command()
    def pretrain(
        data: Path = typer.Argument(..., help="Unlabelled scans: a folder, a scan list (.txt) or a scan."),
        run: Path = typer.Option(..., "--output", "-o", help="Run folder; the same command again resumes it."),
        preset: str = typer.Option("small", "--preset", help="indoor or outdoor (supplementary Table 1, GPUs) or small (CPU)."),
        settings: list[str] = typer.Option(None, "--set", help="Setting key=value, e.g. optim.max_steps=200 or scr.knn=50."),
        reader: str = typer.Option(None, "--format", help="Reader name for the scans; detected when omitted."),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (each torchrun process takes cuda:LOCAL_RANK)."),
    ) -> None:
        """Pre-train a PointINS network without labels; the result is RUN/model.safetensors (the EMA teacher)."""
        from labelfree3d.train.pretrain import Pretrainer, pretrain_preset

        overrides = {
            **parse_settings(settings),
            "train": [str(data)],
            "output_dir": str(run),
            "device": device,
            **({"format": reader} if reader else {}),
        }
        config = pretrain_preset(preset, overrides)
        trainer = Pretrainer(config)
        try:
            result = trainer.fit()
        finally:
            trainer.context.close()
        if int(os.environ.get("RANK", "0")) != 0:
            return
        terms = ", ".join(f"{k} {result.losses[k]:.4f}" for k in ("semantic", "offset") if k in result.losses)
        console.print(f"{result.step} steps ({result.seconds_per_step:.2f} s/step); last {terms}", markup=False)
        console.print(f"model: {result.model_path}", markup=False)
