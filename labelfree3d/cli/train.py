"""`labelfree3d train --config CONFIG`: train a model from a YAML config (single or multi-process)."""

from __future__ import annotations

from pathlib import Path

import typer

from labelfree3d.cli.common import console, parse_settings


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        config: str = typer.Option(..., "--config", "-c", help="YAML config file, or the name of a built-in config (see docs/training.md)."),
        settings: list[str] = typer.Option(None, "--set", help="Override a config key, e.g. optim.lr=2e-4 or model.decoder.num_queries=100 (repeatable)."),
        output: Path = typer.Option(None, "--output", "-o", help="Run folder (overrides output_dir)."),
        resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT/checkpoints/last.safetensors if it exists."),
        device: str = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (overrides device)."),
    ) -> None:
        """Train a class-agnostic mask transformer; run under torchrun for several GPUs/processes."""
        from labelfree3d.train.config import load_train_config  # torch-free: a bad config fails in a second

        overrides = parse_settings(settings)
        if output is not None:
            overrides["output_dir"] = str(output)
        if device is not None:
            overrides["device"] = device
        run_config = load_train_config(config, overrides)
        from labelfree3d.train.trainer import Trainer

        trainer = Trainer(run_config)
        try:
            main = trainer.context.is_main
            if resume and trainer.resume():
                if main:
                    if trainer.resume_note:
                        console.err(f"warning: {trainer.resume_note}")
                    console.err(f"resuming {run_config.output_dir} at step {trainer.step} of {trainer.total_steps}")
            elif main:
                console.err(f"training {run_config.model['name']} for {trainer.total_steps} steps on {trainer.device} "
                            f"({trainer.context.world_size} process(es)), run folder {run_config.output_dir}")
            result = trainer.fit()
        finally:
            trainer.context.close()
        if not main:
            return
        losses = ", ".join(f"{k} {v:.4g}" for k, v in result.losses.items() if k not in ("lr", "grad_norm"))
        console.print(f"step {result.step} (epoch {result.epoch}): {losses}; {result.seconds_per_step:.3f} s/step")
        if result.evaluation:
            console.print("validation: " + ", ".join(f"{k.upper()} {100 * v:.1f}" for k, v in result.evaluation.items()))
        console.print(f"checkpoint: {result.checkpoint}")
        console.print(f"model: {result.model_path}")
